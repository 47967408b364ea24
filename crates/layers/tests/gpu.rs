//! `Net` on each device against the same net on the CPU, written once (`test_device!`): the
//! siamese train net trained 20 SGD iterations, the net API round trips, the label check; and
//! the errors where no GPU can be used.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_layers::{Device, FusedSgd, LearnableParam, Net};
use siamese_net::NetSpec;
use siamese_net::parse::parse_net_text;
use siamese_proto::Phase;
use siamese_testkit::{assert_close, random_pair_datums, test_device, write_db};

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

const STEP: FusedSgd = FusedSgd {
    rate: 0.01,
    momentum: 0.9,
    weight_decay: 5e-4,
    l1: false,
};

/// Caffe's SGD step on the host, in the order of crates/solver's update (and the kernel).
fn sgd_on_host(params: &mut [LearnableParam], history: &mut [Vec<f32>]) {
    for (p, h) in params.iter_mut().zip(history) {
        let (local_rate, local_decay) = (STEP.rate * p.lr_mult, STEP.weight_decay * p.decay_mult);
        let blob = &mut p.blob;
        for ((w, g), v) in blob.data.iter_mut().zip(&mut blob.diff).zip(h.iter_mut()) {
            if local_decay != 0.0 {
                *g += local_decay * *w;
            }
            *v = local_rate * *g + STEP.momentum * *v;
            *g = *v;
            *w -= *g;
        }
    }
}

fn zero_history(net: &Net) -> Vec<Vec<f32>> {
    net.learnable_params()
        .iter()
        .map(|p| vec![0.0; p.blob.count()])
        .collect()
}

/// 20 iterations on `device` (the fused SGD step where it has one) follow the CPU's host step.
fn siamese_training_follows_the_cpu(device: Device) {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(&dir.path().join("pairs"), random_pair_datums(128, 42));
    let spec = siamese_spec(&db);
    let mut cpu = Net::new(&spec, 3).unwrap();
    let mut on_device = Net::on_device(&spec, 3, device).unwrap();
    assert_eq!(on_device.device(), device);
    cpu.set_update_history(zero_history(&cpu)).unwrap();
    on_device.set_update_history(zero_history(&cpu)).unwrap();
    for iter in 0..20 {
        cpu.clear_param_diffs();
        on_device.clear_param_diffs();
        let (cpu_loss, loss) = (cpu.forward().unwrap(), on_device.forward().unwrap());
        assert_close(
            &format!("loss at iteration {iter}"),
            &[cpu_loss],
            &[loss],
            2e-3,
        );
        cpu.backward();
        on_device.backward();
        cpu.update_params(None, sgd_on_host).unwrap();
        on_device.update_params(Some(STEP), sgd_on_host).unwrap();
    }
    let weights = on_device.try_to_proto().unwrap();
    for (c, g) in cpu.to_proto().layer.iter().zip(&weights.layer) {
        for (i, (cb, gb)) in c.blobs.iter().zip(&g.blobs).enumerate() {
            assert_close(&format!("{} blob {i}", c.name()), &cb.data, &gb.data, 2e-3);
        }
    }
    let history = on_device.update_history().unwrap();
    for (i, (c, g)) in cpu
        .update_history()
        .unwrap()
        .iter()
        .zip(&history)
        .enumerate()
    {
        assert_close(&format!("history {i}"), c, g, 5e-3);
    }
    let (_, cpu_out) = cpu.outputs()[0];
    let (_, out) = on_device.outputs()[0];
    assert_close("outputs", &cpu_out.data, &out.data, 2e-3);
}
test_device!(
    siamese_training_follows_the_cpu,
    siamese_training_follows_the_cpu_on_cpu,
    siamese_training_follows_the_cpu_on_gpu
);

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

fn tiny_spec(text: &str) -> NetSpec {
    let param = parse_net_text(text, "tiny.prototxt").unwrap();
    NetSpec::build(&param, Phase::Train, None).unwrap()
}

fn tiny_net(device: Device) -> Net {
    let mut net = Net::on_device(&tiny_spec(TINY), 5, device).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = net.blob_mut("x").unwrap();
    x.data
        .iter_mut()
        .for_each(|v| *v = rng.random_range(-1.0..1.0));
    let label = net.blob_mut("label").unwrap();
    label.data.copy_from_slice(&[0.0, 2.0, 1.0, 2.0]);
    net
}

/// Forward, backward, fetched blobs, host edits of the params, the history and the weights
/// on `device` agree with the CPU.
fn net_api_round_trips(device: Device) {
    let (mut cpu, mut net) = (tiny_net(Device::Cpu), tiny_net(device));
    assert_eq!(
        cpu.learnable_params(),
        net.learnable_params(),
        "same seed, same weights"
    );
    let (cl, gl) = (cpu.forward().unwrap(), net.forward().unwrap());
    assert_close("loss", &[cl], &[gl], 1e-4);
    assert_eq!(cpu.blob("acc").unwrap().data, net.blob("acc").unwrap().data);
    cpu.backward();
    net.backward();
    net.synchronize().unwrap();
    let conv = net.fetch_blob("conv").unwrap().unwrap().clone();
    let cpu_conv = cpu.blob("conv").unwrap();
    assert_close("conv data", &cpu_conv.data, &conv.data, 1e-4);
    assert_close("conv diff", &cpu_conv.diff, &conv.diff, 1e-4);
    // Host edits of the params reach the device; the device diffs come back with them.
    let cpu_diffs: Vec<Vec<f32>> = cpu
        .learnable_params()
        .iter()
        .map(|p| p.blob.diff.clone())
        .collect();
    for (p, c) in net.learnable_params_mut().iter_mut().zip(&cpu_diffs) {
        assert_close(&format!("param {} diff", p.name), c, &p.blob.diff, 1e-4);
        p.blob.data.iter_mut().for_each(|v| *v *= 0.5);
    }
    cpu.learnable_params_mut()
        .iter_mut()
        .for_each(|p| p.blob.data.iter_mut().for_each(|v| *v *= 0.5));
    let (cl, gl) = (cpu.forward().unwrap(), net.forward().unwrap());
    assert_close("loss after host edit", &[cl], &[gl], 1e-4);
    // The history round-trips, also after a fused step moved it to the device and back.
    let history: Vec<Vec<f32>> = zero_history(&net)
        .into_iter()
        .map(|h| vec![0.25; h.len()])
        .collect();
    net.set_update_history(history.clone()).unwrap();
    assert_eq!(net.update_history().unwrap(), history);
    assert!(net.set_update_history(history[1..].to_vec()).is_err());
    net.update_params(Some(STEP), sgd_on_host).unwrap();
    cpu.set_update_history(history).unwrap();
    cpu.update_params(None, sgd_on_host).unwrap();
    let (want, got) = (cpu.update_history().unwrap(), net.update_history().unwrap());
    for (i, (c, g)) in want.iter().zip(&got).enumerate() {
        assert_close(&format!("history {i} after a step"), c, g, 1e-4);
    }
    // Weights go to a CPU net through copy_params_from and to_proto alike.
    let mut back = tiny_net(Device::Cpu);
    back.copy_params_from(&net).unwrap();
    assert_eq!(back.to_proto(), net.to_proto());
}
test_device!(
    net_api_round_trips,
    net_api_round_trips_on_cpu,
    net_api_round_trips_on_gpu
);

/// A label outside the classes fails on `device` with the CPU layer's error.
fn a_label_outside_the_classes_fails_as_on_the_cpu(device: Device) {
    let mut net = tiny_net(device);
    let label = net.blob_mut("label").unwrap();
    label.data.copy_from_slice(&[0.0, 3.0, 1.0, 2.0]);
    assert_eq!(
        net.forward().unwrap_err().to_string(),
        "layer \"loss\": label 3 outside the 3 classes"
    );
}
test_device!(
    a_label_outside_the_classes_fails_as_on_the_cpu,
    bad_label_on_cpu,
    bad_label_on_gpu
);

#[cfg(feature = "cuda")]
mod cuda_only {
    use siamese_layers::{Device, DeviceError, LayerError, Net, probe_gpu};

    use super::{TINY, tiny_spec};

    #[test]
    fn probe_names_what_is_missing_and_on_device_fails_the_same_way() {
        let spec = tiny_spec(TINY);
        match probe_gpu(0) {
            Ok(description) => {
                assert!(description.contains("sm_"), "{description}");
                let e = probe_gpu(1000).unwrap_err();
                assert!(
                    matches!(e, DeviceError::NoSuchGpu { ordinal: 1000, .. }),
                    "{e}"
                );
                let e = Net::on_device(&spec, 1, Device::Gpu(1000)).unwrap_err();
                assert!(
                    matches!(e, LayerError::Device(DeviceError::NoSuchGpu { .. })),
                    "{e}"
                );
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
                assert!(
                    matches!(&again, LayerError::Device(d) if *d == e),
                    "{again}"
                );
            }
        }
    }

    #[test]
    fn a_layer_without_cuda_code_is_named_before_any_device_is_touched() {
        let text = TINY.replace(
            r#"layer { name: "loss""#,
            r#"layer { name: "drop" type: "Dropout" bottom: "ip" top: "ip" }
layer { name: "loss""#,
        );
        let e = Net::on_device(&tiny_spec(&text), 1, Device::Gpu(0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GPU: layer \"drop\": Dropout has no CUDA implementation; run it with --device cpu"
        );
    }
}
