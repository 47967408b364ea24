//! Criterion benchmarks at the siamese net's shapes (64 pairs = 128 images): the GEMM shapes
//! of its products, each tower layer forward and backward, and a whole training iteration.
//!
//! `cargo bench -p siamese-layers --bench layers [-- FILTER]`; threads: `RAYON_NUM_THREADS`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use siamese_data::convert::create_siamese_db;
use siamese_data::pairs::PairOptions;
use siamese_layers::backend::Gemm;
use siamese_layers::layers::{Convolution, InnerProduct, Pooling, ReLU};
use siamese_layers::{Backend, Blob, CpuBackend, Layer, Net};
use siamese_net::layer::{ConvConfig, InnerProductConfig, PoolConfig, ReluConfig};
use siamese_net::{NetSpec, load_net};
use siamese_proto::pooling_parameter::PoolMethod;
use siamese_proto::{
    ConvolutionParameter, InnerProductParameter, LayerParameter, Phase, PoolingParameter,
};

/// Images per iteration: both images of 64 pairs.
const IMAGES: usize = 128;

fn uniform(len: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic fill in [-1, 1); the values do not matter for timing.
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn random_blob(shape: &[usize], seed: u32) -> Blob {
    Blob::from_data(shape, uniform(shape.iter().product(), seed))
}

fn gemm_shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    // (name, trans_a, trans_b, m, n, k): the products of one iteration at batch 128.
    let shapes = [
        ("conv1_fwd", false, false, 20, IMAGES * 576, 25),
        ("conv1_wgrad", false, true, 20, 25, IMAGES * 576),
        ("conv2_fwd", false, false, 50, IMAGES * 64, 500),
        ("conv2_fwd_per_image", false, false, 50, 64, 500),
        ("conv2_wgrad_per_image", false, false, 50, 512, 64),
        ("conv2_colgrad_per_image", true, false, 500, 64, 50),
        ("conv1_fwd_per_image", false, false, 20, 576, 25),
        ("conv1_wgrad_per_image", false, false, 20, 32, 576),
        ("conv2_wgrad", false, true, 50, 500, IMAGES * 64),
        ("conv2_colgrad", true, false, 500, IMAGES * 64, 50),
        ("ip1_fwd", false, true, IMAGES, 500, 800),
        ("ip1_wgrad", true, false, 500, 800, IMAGES),
        ("ip1_dgrad", false, false, IMAGES, 800, 500),
    ];
    for (name, ta, tb, m, n, k) in shapes {
        let g = Gemm::new(ta, tb, m, n, k);
        let (a, b) = (uniform(m * k, 1), uniform(k * n, 2));
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements(2 * g.macs()));
        group.bench_function(name, |bench| {
            bench.iter(|| CpuBackend.gemm(g, black_box(&a), black_box(&b), &mut out));
        });
    }
    group.finish();
}

fn named(name: &str) -> LayerParameter {
    LayerParameter {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn conv(name: &str, num_output: u32) -> Box<dyn Layer> {
    let p = LayerParameter {
        convolution_param: Some(ConvolutionParameter {
            num_output: Some(num_output),
            kernel_size: vec![5],
            ..Default::default()
        }),
        ..named(name)
    };
    Box::new(Convolution::new(name, &ConvConfig::parse(&p).unwrap()).unwrap())
}

fn pool(name: &str) -> Box<dyn Layer> {
    let p = LayerParameter {
        pooling_param: Some(PoolingParameter {
            pool: Some(PoolMethod::Max as i32),
            kernel_size: Some(2),
            stride: Some(2),
            ..Default::default()
        }),
        ..named(name)
    };
    Box::new(Pooling::new(name, &PoolConfig::parse(&p).unwrap()))
}

fn ip(name: &str, num_output: u32) -> Box<dyn Layer> {
    let p = LayerParameter {
        inner_product_param: Some(InnerProductParameter {
            num_output: Some(num_output),
            ..Default::default()
        }),
        ..named(name)
    };
    Box::new(InnerProduct::new(
        name,
        &InnerProductConfig::parse(&p).unwrap(),
    ))
}

/// One tower layer at batch 128 with random bottoms, parameters and top diffs.
fn layer_benches(c: &mut Criterion) {
    let tower: Vec<(&str, Box<dyn Layer>, Vec<usize>)> = vec![
        ("conv1", conv("conv1", 20), vec![IMAGES, 1, 28, 28]),
        ("pool1", pool("pool1"), vec![IMAGES, 20, 24, 24]),
        ("conv2", conv("conv2", 50), vec![IMAGES, 20, 12, 12]),
        ("pool2", pool("pool2"), vec![IMAGES, 50, 8, 8]),
        ("ip1", ip("ip1", 500), vec![IMAGES, 50, 4, 4]),
        (
            "relu1",
            Box::new(ReLU::new(&ReluConfig::parse(&named("relu1")).unwrap())),
            vec![IMAGES, 500],
        ),
        ("ip2", ip("ip2", 10), vec![IMAGES, 500]),
        ("feat", ip("feat", 2), vec![IMAGES, 10]),
    ];
    let mut group = c.benchmark_group("layer");
    for (seed, (name, mut layer, shape)) in tower.into_iter().enumerate() {
        let seed = seed as u32 * 4;
        let mut bottom = [random_blob(&shape, seed + 1)];
        let shapes = layer.setup(&bottom, 1).unwrap();
        let mut params: Vec<Blob> = shapes
            .iter()
            .zip(seed + 2..)
            .map(|(s, seed)| random_blob(s, seed))
            .collect();
        let mut top = [Blob::default()];
        layer.reshape(&bottom, &mut top).unwrap();
        layer
            .forward(&CpuBackend, &bottom, &params, &mut top)
            .unwrap();
        top[0].diff = uniform(top[0].count(), seed + 3);
        let flops = layer.forward_flops();
        if flops > 0 {
            group.throughput(Throughput::Elements(flops));
        }
        group.bench_function(format!("{name}_forward"), |b| {
            b.iter(|| {
                layer
                    .forward(&CpuBackend, &bottom, &params, &mut top)
                    .unwrap()
            });
        });
        // Backward of the first layer skips the data gradient, as in the net.
        let propagate = [name != "conv1"];
        group.bench_function(format!("{name}_backward"), |b| {
            b.iter(|| {
                layer.backward(&CpuBackend, &top, &mut params, &propagate, &mut bottom);
            });
        });
    }
    group.finish();
}

/// Caffe's siamese train net on pairs from data/mnist-sample, or `None` (with a note) when
/// the reference prototxt is not at `<repo>/../shared/caffe-reference`.
fn siamese_train_net(dir: &Path) -> Option<Net> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // CI keeps shared/ beside the clone; a worktree one level deeper finds it one further up.
    let Some(reference) = ["../shared", "../../shared"]
        .iter()
        .map(|d| repo.join(d).join("caffe-reference"))
        .find(|d| d.is_dir())
    else {
        eprintln!("skipping the iteration bench: ../shared/caffe-reference is missing");
        return None;
    };
    let db = dir.join("pairs");
    let sample = repo.join("data/mnist-sample");
    create_siamese_db(
        &sample.join("train-images-idx3-ubyte.gz"),
        &sample.join("train-labels-idx1-ubyte.gz"),
        &db,
        &PairOptions::default(),
        false,
    )
    .unwrap();
    let mut param = load_net(&reference.join("v2/mnist_siamese_train_test.prototxt")).unwrap();
    for layer in &mut param.layer {
        if let Some(dp) = layer.data_param.as_mut() {
            dp.source = Some(db.display().to_string());
        }
    }
    Some(Net::new(&NetSpec::build(&param, Phase::Train, None).unwrap(), 1).unwrap())
}

/// Forward + backward + a plain SGD step of the whole siamese train net (64 pairs).
fn iteration(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut net) = siamese_train_net(dir.path()) else {
        return;
    };
    let mut group = c.benchmark_group("iteration");
    group.sample_size(30);
    group.bench_function("siamese_train_64_pairs", |b| {
        b.iter(|| {
            net.clear_param_diffs();
            let loss = net.forward().unwrap();
            net.backward();
            for p in net.learnable_params_mut() {
                let lr = 1e-3 * p.lr_mult;
                let blob = &mut p.blob;
                blob.data
                    .iter_mut()
                    .zip(&blob.diff)
                    .for_each(|(w, d)| *w -= lr * d);
            }
            black_box(loss)
        });
    });
    group.finish();
}

criterion_group!(benches, gemm_shapes, layer_benches, iteration);
criterion_main!(benches);
