//! Every supported layer's GPU op against its CPU layer on random inputs: tops, bottom diffs
//! and (accumulated) parameter diffs within 1e-4 relative. Skips without a usable GPU.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_proto::LayerParameter;
use siamese_testkit::{assert_close, gpu_or_skip};

use super::{CudaLayer, CudaSupport, GpuBlob, GpuDevice, Scratch};
use crate::gradient_check::random_blob;
use crate::{Blob, CpuBackend};

fn param(body: &str) -> LayerParameter {
    let text = format!("layer {{ name: \"under_test\" {body} }}");
    siamese_net::parse::parse_net_text(&text, "test")
        .unwrap()
        .layer
        .remove(0)
}

/// The layer `body` defines, built as the net builds it.
fn layer(body: &str) -> Box<dyn CudaLayer> {
    let p = param(body);
    let config = siamese_net::LayerConfig::parse(&p).unwrap();
    crate::layers::build(p.name(), &config, siamese_proto::Phase::Train, 0, None).unwrap()
}

/// A blob of integer labels in `0..classes` (as floats).
fn labels(n: usize, classes: u32, seed: u64) -> Blob {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Blob::from_data(
        &[n],
        (0..n)
            .map(|_| rng.random_range(0..classes) as f32)
            .collect(),
    )
}

/// The relative tolerance of a layer's GPU results against its CPU layer's.
const TOL: f32 = 1e-4;

fn upload(gpu: &GpuDevice, host: &Blob) -> GpuBlob {
    let mut g = GpuBlob::zeros(gpu, &host.shape).unwrap();
    g.upload(gpu, host, true).unwrap();
    g
}

fn download(gpu: &GpuDevice, g: &GpuBlob) -> Blob {
    let mut host = Blob::default();
    g.download(gpu, &mut host, true).unwrap();
    host
}

/// Runs `make()`'s layer forward and backward on the CPU and on the GPU from the same
/// bottoms, params (random data and diffs) and top diffs, and compares everything.
fn check(make: impl Fn() -> Box<dyn CudaLayer>, bottoms: Vec<Blob>, tops: usize, down: &[bool]) {
    let (mut cpu_layer, mut gpu_layer) = (make(), make());
    let kind = cpu_layer.kind();
    let shapes = cpu_layer.setup(&bottoms, tops).unwrap();
    let mut params: Vec<Blob> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut p = random_blob(s, 100 + i as u64);
            p.diff = random_blob(s, 200 + i as u64).data;
            p
        })
        .collect();
    let initial_params = params.clone();
    let mut top = vec![Blob::default(); tops];
    cpu_layer.reshape(&bottoms, &mut top).unwrap();
    let empty_tops = top.clone();
    let top_diffs: Vec<Vec<f32>> = top
        .iter()
        .enumerate()
        .map(|(i, t)| random_blob(&t.shape, 300 + i as u64).data)
        .collect();
    let cpu = CpuBackend::new();
    let mut bottom = bottoms.clone();
    cpu_layer.forward(&cpu, &bottom, &params, &mut top).unwrap();
    for (t, d) in top.iter_mut().zip(&top_diffs) {
        t.diff.clone_from(d);
    }
    cpu_layer.backward(&cpu, &top, &mut params, down, &mut bottom);
    gpu_layer.setup(&bottoms, tops).unwrap();
    gpu_layer
        .reshape(&bottoms, &mut empty_tops.clone())
        .unwrap();
    assert_eq!(
        gpu_layer.cuda_support(),
        CudaSupport::Kernels,
        "{kind} has kernels"
    );

    let Some(gpu) = gpu_or_skip(GpuDevice::get(0)) else {
        return;
    };
    gpu.bind().unwrap();
    let (g_bottom, g_params, g_top) = run_gpu(
        &gpu,
        &*gpu_layer,
        &bottoms,
        &initial_params,
        &empty_tops,
        &top_diffs,
        down,
    );
    for (i, (c, g)) in top.iter().zip(&g_top).enumerate() {
        assert_close(&format!("{kind} top {i} data"), &c.data, &g.data, TOL);
    }
    for (i, (c, g)) in bottom
        .iter()
        .zip(&g_bottom)
        .enumerate()
        .filter(|(i, _)| down[*i])
    {
        assert_close(&format!("{kind} bottom {i} diff"), &c.diff, &g.diff, TOL);
    }
    for (i, (c, g)) in params.iter().zip(&g_params).enumerate() {
        assert_close(&format!("{kind} param {i} diff"), &c.diff, &g.diff, TOL);
    }
}

/// The GPU half of `check`: returns the bottoms, params and tops downloaded after backward.
fn run_gpu(
    gpu: &GpuDevice,
    layer: &dyn CudaLayer,
    bottoms: &[Blob],
    params: &[Blob],
    top: &[Blob],
    top_diffs: &[Vec<f32>],
    down: &[bool],
) -> (Vec<Blob>, Vec<Blob>, Vec<Blob>) {
    let mut scratch = Scratch::default();
    let mut b: Vec<GpuBlob> = bottoms.iter().map(|x| upload(gpu, x)).collect();
    let mut p: Vec<GpuBlob> = params.iter().map(|x| upload(gpu, x)).collect();
    let mut t: Vec<GpuBlob> = top
        .iter()
        .map(|x| GpuBlob::zeros(gpu, &x.shape).unwrap())
        .collect();
    layer
        .cuda_forward(gpu, &mut scratch, &b, &p, &mut t)
        .unwrap();
    let forward_tops: Vec<Blob> = t.iter().map(|x| download(gpu, x)).collect();
    for (x, (host, d)) in t.iter_mut().zip(forward_tops.iter().zip(top_diffs)) {
        let mut with_diff = host.clone();
        with_diff.diff.clone_from(d);
        x.upload(gpu, &with_diff, true).unwrap();
    }
    layer
        .cuda_backward(gpu, &mut scratch, &t, &mut p, down, &mut b)
        .unwrap();
    gpu.synchronize().unwrap();
    let dl = |v: &[GpuBlob]| v.iter().map(|x| download(gpu, x)).collect::<Vec<_>>();
    (dl(&b), dl(&p), forward_tops)
}

#[test]
fn convolution_matches_the_cpu() {
    let body = r#"type: "Convolution" convolution_param { num_output: 4 kernel_size: 3
        stride: 2 pad: 1 }"#;
    check(
        || layer(body),
        vec![random_blob(&[3, 2, 7, 6], 1)],
        1,
        &[true],
    );
    let body = r#"type: "Convolution" convolution_param { num_output: 3 kernel_h: 2 kernel_w: 3
        dilation: 2 bias_term: false }"#;
    check(
        || layer(body),
        vec![random_blob(&[2, 3, 8, 9], 2)],
        1,
        &[true],
    );
}

#[test]
fn inner_product_matches_the_cpu() {
    let body = r#"type: "InnerProduct" inner_product_param { num_output: 7 }"#;
    check(
        || layer(body),
        vec![random_blob(&[5, 3, 2, 2], 3)],
        1,
        &[true],
    );
    let body = r#"type: "InnerProduct" inner_product_param { num_output: 4 transpose: true }"#;
    check(|| layer(body), vec![random_blob(&[6, 5], 4)], 1, &[true]);
}

#[test]
fn pooling_matches_the_cpu() {
    for pool in ["MAX", "AVE"] {
        let body = format!(
            r#"type: "Pooling" pooling_param {{ pool: {pool} kernel_size: 3 stride: 2 pad: 1 }}"#
        );
        check(
            || layer(&body),
            vec![random_blob(&[2, 3, 7, 6], 5)],
            1,
            &[true],
        );
    }
    let body = r#"type: "Pooling" pooling_param { pool: AVE global_pooling: true }"#;
    check(
        || layer(body),
        vec![random_blob(&[2, 3, 5, 4], 6)],
        1,
        &[true],
    );
}

#[test]
fn relu_matches_the_cpu() {
    check(
        || layer(r#"type: "ReLU""#),
        vec![random_blob(&[4, 3, 5], 7)],
        1,
        &[true],
    );
    let body = r#"type: "ReLU" relu_param { negative_slope: 0.1 }"#;
    check(|| layer(body), vec![random_blob(&[31], 8)], 1, &[true]);
}

#[test]
fn slice_and_split_match_the_cpu() {
    let body = r#"type: "Slice" slice_param { axis: 1 slice_point: 1 slice_point: 3 }"#;
    check(|| layer(body), vec![random_blob(&[4, 5, 3], 9)], 3, &[true]);
    check(
        || layer(r#"type: "Split""#),
        vec![random_blob(&[3, 4], 10)],
        3,
        &[true],
    );
}

#[test]
fn contrastive_loss_matches_the_cpu() {
    let sim = Blob::from_data(&[8], (0..8).map(|i| (i % 2) as f32).collect());
    for legacy in [false, true] {
        let body = format!(
            r#"type: "ContrastiveLoss" contrastive_loss_param {{ margin: 1.5 legacy_version: {legacy} }}"#
        );
        let bottoms = vec![
            random_blob(&[8, 3, 1, 1], 11),
            random_blob(&[8, 3, 1, 1], 12),
            sim.clone(),
        ];
        check(|| layer(&body), bottoms, 1, &[true, true, false]);
    }
}

#[test]
fn softmax_and_softmax_loss_match_the_cpu() {
    let body = r#"type: "Softmax" softmax_param { axis: 1 }"#;
    check(
        || layer(body),
        vec![random_blob(&[4, 5, 3], 13)],
        1,
        &[true],
    );
    let body = r#"type: "SoftmaxWithLoss""#;
    let bottoms = vec![random_blob(&[6, 5], 14), labels(6, 5, 15)];
    check(|| layer(body), bottoms.clone(), 2, &[true, false]);
    let body = r#"type: "SoftmaxWithLoss" loss_param { ignore_label: 2 normalization: VALID }"#;
    check(|| layer(body), bottoms, 1, &[true, false]);
}

#[test]
fn accuracy_matches_the_cpu() {
    let body = r#"type: "Accuracy" accuracy_param { top_k: 2 }"#;
    let bottoms = vec![random_blob(&[9, 4], 16), labels(9, 4, 17)];
    check(|| layer(body), bottoms, 1, &[false, false]);
    let body = r#"type: "Accuracy" accuracy_param { ignore_label: 1 }"#;
    let bottoms = vec![random_blob(&[9, 4], 18), labels(9, 4, 19)];
    check(|| layer(body), bottoms, 1, &[false, false]);
}
