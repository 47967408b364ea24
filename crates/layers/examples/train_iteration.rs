//! Times one training iteration (forward + backward) of Caffe's siamese train net, batch 64
//! pairs, on pairs made from data/mnist-sample, with a per-layer breakdown.
//!
//! `cargo run --release -p siamese-layers --example train_iteration [-- ITERATIONS [OUT.caffemodel]]`
//! (threads: `RAYON_NUM_THREADS`, default all cores). With `OUT`, each iteration also takes a
//! plain SGD step (lr 0.01 × lr_mult) and the weights are saved there at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use siamese_data::convert::create_siamese_db;
use siamese_data::pairs::PairOptions;
use siamese_layers::Net;
use siamese_net::{NetSpec, load_net};
use siamese_proto::Phase;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args().nth(1).map_or(Ok(20), |a| a.parse())?;
    let save = std::env::args().nth(2);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reference = ["../shared/caffe-reference", "/work/shared/caffe-reference"]
        .iter()
        .map(|d| repo.join(d))
        .find(|d| d.is_dir())
        .ok_or("Caffe's reference prototxt folder (../shared/caffe-reference) is missing")?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("pairs");
    let sample = repo.join("data/mnist-sample");
    create_siamese_db(
        &sample.join("train-images-idx3-ubyte.gz"),
        &sample.join("train-labels-idx1-ubyte.gz"),
        &db,
        &PairOptions::default(),
        false,
    )?;
    let mut param = load_net(&reference.join("v2/mnist_siamese_train_test.prototxt"))?;
    for layer in &mut param.layer {
        if let Some(dp) = layer.data_param.as_mut() {
            dp.source = Some(db.display().to_string());
        }
    }
    let mut net = Net::new(&NetSpec::build(&param, Phase::Train, None)?, 1)?;
    let layers = net.num_layers();
    let (mut forward, mut backward) = (vec![Duration::ZERO; layers], vec![Duration::ZERO; layers]);
    for it in 0..iterations + 2 {
        let warm = it >= 2;
        net.clear_param_diffs();
        for (i, f) in forward.iter_mut().enumerate() {
            let t = Instant::now();
            net.forward_layer(i)?;
            if warm {
                *f += t.elapsed();
            }
        }
        for (i, b) in backward.iter_mut().enumerate().rev() {
            let t = Instant::now();
            net.backward_layer(i);
            if warm {
                *b += t.elapsed();
            }
        }
        if save.is_some() {
            for p in net.learnable_params_mut() {
                let lr = 0.01 * p.lr_mult;
                p.blob
                    .data
                    .iter_mut()
                    .zip(&p.blob.diff)
                    .for_each(|(w, d)| *w -= lr * d);
            }
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / iterations as f64;
    println!(
        "{} threads, backend {}, {iterations} iterations of batch 64 pairs",
        rayon::current_num_threads(),
        net.backend_name()
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10}",
        "layer", "fwd ms", "bwd ms", "GFLOP/s"
    );
    for (i, name) in net.layer_names().iter().enumerate() {
        let gflops = net.layer_flops(i) as f64 / (ms(forward[i]) * 1e6).max(1e-9);
        println!(
            "{name:<12} {:>10.3} {:>10.3} {gflops:>10.1}",
            ms(forward[i]),
            ms(backward[i])
        );
    }
    let (f, b) = (ms(forward.iter().sum()), ms(backward.iter().sum()));
    println!(
        "total: forward {f:.2} ms + backward {b:.2} ms = {:.2} ms per iteration",
        f + b
    );
    if let Some(path) = save {
        net.save_caffemodel(Path::new(&path))?;
        println!("weights after {} SGD steps: {path}", iterations + 2);
    }
    Ok(())
}
