//! `Net` on a CUDA GPU against the same net on the CPU: the siamese train net trained 20 SGD
//! iterations both ways, the device API round trips, and the errors where no GPU can be used.
#![cfg(feature = "cuda")]

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_layers::{Device, Net, probe_gpu};
use siamese_net::NetSpec;
use siamese_net::parse::parse_net_text;
use siamese_proto::{Datum, Phase};

/// The GPU to test on, or `None` (printing why) when none can be used here.
fn gpu() -> Option<Device> {
    match probe_gpu(0) {
        Ok(description) => {
            eprintln!("testing on {description}");
            Some(Device::Gpu(0))
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// `|a − b| ≤ tol · max(|a|, 1% of the largest |a|)` element by element.
fn assert_close(what: &str, cpu: &[f32], gpu: &[f32], tol: f32) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
    let largest = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        let bound = tol * c.abs().max(0.01 * largest).max(1e-7);
        assert!((c - g).abs() <= bound, "{what}[{i}]: cpu {c}, gpu {g}");
    }
}

/// A LevelDB of `n` random 2×28×28 pairs, labels alternating similar / dissimilar.
fn pair_db(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("pairs_leveldb");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let records: Vec<_> = (0..n)
        .map(|i| {
            let datum = Datum {
                channels: Some(2),
                height: Some(28),
                width: Some(28),
                data: Some((0..2 * 28 * 28).map(|_| rng.random::<u8>()).collect()),
                label: Some((i % 2) as i32),
                ..Default::default()
            };
            (format!("{i:08}"), datum)
        })
        .collect();
    siamese_data::leveldb::write_datums(&path, records, false).unwrap();
    path
}

/// This project's siamese train net reading `db`. Embedded, not read at run time: this test
/// executable is carried to a GPU machine where the source tree is elsewhere (gpu-check.sh).
fn siamese_spec(db: &Path) -> NetSpec {
    let text = include_str!("../../../experiments/siamese/mnist_siamese_train_test.prototxt");
    let mut param = parse_net_text(text, "mnist_siamese_train_test.prototxt").unwrap();
    for layer in &mut param.layer {
        if let Some(dp) = layer.data_param.as_mut() {
            dp.source = Some(db.display().to_string());
        }
    }
    NetSpec::build(&param, Phase::Train, None).unwrap()
}

/// Caffe's SGD step on the host, in the order of crates/solver's update (and the kernel).
fn sgd_on_host(net: &mut Net, history: &mut [Vec<f32>], rate: f32, momentum: f32, decay: f32) {
    for (p, h) in net.learnable_params_mut().iter_mut().zip(history) {
        let (local_rate, local_decay) = (rate * p.lr_mult, decay * p.decay_mult);
        let blob = &mut p.blob;
        for ((w, g), v) in blob.data.iter_mut().zip(&mut blob.diff).zip(h.iter_mut()) {
            if local_decay != 0.0 {
                *g += local_decay * *w;
            }
            *v = local_rate * *g + momentum * *v;
            *g = *v;
            *w -= *g;
        }
    }
}

#[test]
fn siamese_training_on_the_gpu_follows_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let spec = siamese_spec(&pair_db(dir.path(), 128));
    let Some(device) = gpu() else { return };
    let mut cpu = Net::new(&spec, 3).unwrap();
    let mut gpu = Net::on_device(&spec, 3, device).unwrap();
    assert_eq!(gpu.device(), device);
    let mut history: Vec<Vec<f32>> = cpu
        .learnable_params()
        .iter()
        .map(|p| vec![0.0; p.blob.count()])
        .collect();
    for iter in 0..20 {
        cpu.clear_param_diffs();
        gpu.clear_param_diffs();
        let (cpu_loss, gpu_loss) = (cpu.forward().unwrap(), gpu.forward().unwrap());
        assert_close(
            &format!("loss at iteration {iter}"),
            &[cpu_loss],
            &[gpu_loss],
            2e-3,
        );
        cpu.backward();
        gpu.backward();
        sgd_on_host(&mut cpu, &mut history, 0.01, 0.9, 5e-4);
        gpu.sgd_update_on_device(0.01, 0.9, 5e-4, false).unwrap();
        gpu.synchronize().unwrap();
    }
    let on_gpu = gpu.to_proto();
    for (c, g) in cpu.to_proto().layer.iter().zip(&on_gpu.layer) {
        for (i, (cb, gb)) in c.blobs.iter().zip(&g.blobs).enumerate() {
            assert_close(&format!("{} blob {i}", c.name()), &cb.data, &gb.data, 2e-3);
        }
    }
    for (i, (c, g)) in history
        .iter()
        .zip(gpu.device_history().unwrap())
        .enumerate()
    {
        assert_close(&format!("history {i}"), c, &g, 5e-3);
    }
    let (_, cpu_out) = cpu.outputs()[0];
    let (_, gpu_out) = gpu.outputs()[0];
    assert_close("outputs", &cpu_out.data, &gpu_out.data, 2e-3);
}

const TINY: &str = r#"
name: "tiny"
layer { name: "in" type: "Input" top: "x" top: "label"
        input_param { shape { dim: 4 dim: 1 dim: 6 dim: 6 } shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
"#;

fn tiny_net(device: Device) -> Net {
    let param = parse_net_text(TINY, "tiny.prototxt").unwrap();
    let spec = NetSpec::build(&param, Phase::Train, None).unwrap();
    let mut net = Net::on_device(&spec, 5, device).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = net.blob_mut("x").unwrap();
    x.data
        .iter_mut()
        .for_each(|v| *v = rng.random_range(-1.0..1.0));
    let label = net.blob_mut("label").unwrap();
    label.data.copy_from_slice(&[0.0, 2.0, 1.0, 2.0]);
    net
}

#[test]
fn gpu_net_api_round_trips() {
    let Some(device) = gpu() else { return };
    let (mut cpu, mut gpu) = (tiny_net(Device::Cpu), tiny_net(device));
    assert_eq!(
        cpu.learnable_params(),
        gpu.learnable_params(),
        "same seed, same weights"
    );
    let (cl, gl) = (cpu.forward().unwrap(), gpu.forward().unwrap());
    assert_close("loss", &[cl], &[gl], 1e-4);
    assert_eq!(cpu.blob("acc").unwrap().data, gpu.blob("acc").unwrap().data);
    cpu.backward();
    gpu.backward();
    gpu.synchronize().unwrap();
    let conv = gpu.fetch_blob("conv").unwrap().unwrap().clone();
    assert_close(
        "conv data",
        &cpu.blob("conv").unwrap().data,
        &conv.data,
        1e-4,
    );
    assert_close(
        "conv diff",
        &cpu.blob("conv").unwrap().diff,
        &conv.diff,
        1e-4,
    );
    // Host edits of the params reach the device; the device diffs come back with them.
    let cpu_diffs: Vec<Vec<f32>> = cpu
        .learnable_params()
        .iter()
        .map(|p| p.blob.diff.clone())
        .collect();
    for (p, c) in gpu.learnable_params_mut().iter_mut().zip(&cpu_diffs) {
        assert_close(&format!("param {} diff", p.name), c, &p.blob.diff, 1e-4);
        p.blob.data.iter_mut().for_each(|v| *v *= 0.5);
    }
    cpu.learnable_params_mut()
        .iter_mut()
        .for_each(|p| p.blob.data.iter_mut().for_each(|v| *v *= 0.5));
    let (cl, gl) = (cpu.forward().unwrap(), gpu.forward().unwrap());
    assert_close("loss after host edit", &[cl], &[gl], 1e-4);
    // History round trip, and its length check.
    let history: Vec<Vec<f32>> = gpu
        .learnable_params()
        .iter()
        .map(|p| vec![0.25; p.blob.count()])
        .collect();
    gpu.set_device_history(&history).unwrap();
    assert_eq!(gpu.device_history().unwrap(), history);
    assert!(gpu.set_device_history(&history[1..]).is_err());
    // Weights go to a CPU net through copy_params_from and to_proto alike.
    let mut back = tiny_net(Device::Cpu);
    back.copy_params_from(&gpu).unwrap();
    assert_eq!(back.to_proto(), gpu.to_proto());
}

#[test]
fn probe_names_what_is_missing_and_on_device_fails_the_same_way() {
    let param = parse_net_text(TINY, "tiny.prototxt").unwrap();
    let spec = NetSpec::build(&param, Phase::Train, None).unwrap();
    match probe_gpu(0) {
        Ok(description) => {
            assert!(description.contains("sm_"), "{description}");
            let e = probe_gpu(1000).unwrap_err().to_string();
            assert!(e.starts_with("GPU: no GPU 1000: "), "{e}");
            let e = Net::on_device(&spec, 1, Device::Gpu(1000))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("GPU: no GPU 1000: "), "{e}");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "one line: {message}");
            let named = [
                "libcuda.so",
                "libnvrtc.so.13",
                "libcublas.so.13",
                "no GPU 0",
                "CUDA",
            ];
            assert!(named.iter().any(|n| message.contains(n)), "{message}");
            let again = Net::on_device(&spec, 1, Device::Gpu(0)).unwrap_err();
            assert_eq!(again.to_string(), message);
        }
    }
}

#[test]
fn a_layer_without_a_cuda_op_is_named_before_any_device_is_touched() {
    let text = TINY.replace(
        r#"layer { name: "loss""#,
        r#"layer { name: "drop" type: "Dropout" bottom: "ip" top: "ip" }
layer { name: "loss""#,
    );
    let param = parse_net_text(&text, "tiny.prototxt").unwrap();
    let spec = NetSpec::build(&param, Phase::Train, None).unwrap();
    let e = Net::on_device(&spec, 1, Device::Gpu(0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GPU: layer \"drop\" (Dropout) has no CUDA implementation; run it with --device cpu"
    );
}

#[test]
fn a_label_outside_the_classes_fails_as_on_the_cpu() {
    let bad_labels = |net: &mut Net| {
        let label = net.blob_mut("label").unwrap();
        label.data.copy_from_slice(&[0.0, 3.0, 1.0, 2.0]);
    };
    let mut cpu = tiny_net(Device::Cpu);
    bad_labels(&mut cpu);
    let expected = cpu.forward().unwrap_err().to_string();
    assert_eq!(expected, "layer \"loss\": label 3 outside the 3 classes");
    let Some(device) = gpu() else { return };
    let mut gpu = tiny_net(device);
    bad_labels(&mut gpu);
    assert_eq!(gpu.forward().unwrap_err().to_string(), expected);
}
