//! `Net` over real net definitions: Caffe's siamese train net on a small pair LevelDB, a tiny
//! weight-sharing net checked numerically end to end, the deploy net, and `.caffemodel` I/O.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_layers::Net;
use siamese_layers::backend::{ConvGeometry, Gemm, PoolGeometry};
use siamese_net::parse::parse_net_text;
use siamese_net::{NetSpec, load_net};
use siamese_proto::{BlobProto, Datum, NetParameter, Phase, V1LayerParameter};

/// Caffe's reference prototxt folder, or `None` (the test prints why and passes) when absent.
fn reference(file: &str) -> Option<PathBuf> {
    let candidates = [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/caffe-reference"
        ),
        "/work/shared/caffe-reference",
    ];
    let found = candidates
        .iter()
        .map(|d| Path::new(d).join(file))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("skipped: Caffe's reference files are not in {candidates:?}");
    }
    found
}

/// A LevelDB of `n` random 2×28×28 pairs, labels alternating similar / dissimilar.
fn pair_db(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("pairs_leveldb");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let records = (0..n).map(|i| {
        let datum = Datum {
            channels: Some(2),
            height: Some(28),
            width: Some(28),
            data: Some((0..2 * 28 * 28).map(|_| rng.random::<u8>()).collect()),
            label: Some((i % 2) as i32),
            ..Default::default()
        };
        (format!("{i:08}"), datum)
    });
    siamese_data::leveldb::write_datums(&path, records.collect::<Vec<_>>(), false).unwrap();
    path
}

/// Caffe's siamese train/test net with both Data layers reading `db`.
fn siamese_spec(db: &Path, phase: Phase) -> Option<NetSpec> {
    let mut param = load_net(&reference("v2/mnist_siamese_train_test.prototxt")?).unwrap();
    for layer in &mut param.layer {
        if let Some(dp) = layer.data_param.as_mut() {
            dp.source = Some(db.display().to_string());
        }
    }
    Some(NetSpec::build(&param, phase, None).unwrap())
}

#[test]
fn siamese_train_net_learns_with_shared_towers() {
    let dir = tempfile::tempdir().unwrap();
    let db = pair_db(dir.path(), 80);
    let Some(spec) = siamese_spec(&db, Phase::Train) else {
        return;
    };
    let mut net = Net::new(&spec, 1).unwrap();

    let params: Vec<(&str, Vec<usize>, f32)> = net
        .learnable_params()
        .iter()
        .map(|p| (p.name.as_str(), p.blob.shape.clone(), p.lr_mult))
        .collect();
    assert_eq!(params.len(), 10, "one blob per shared parameter");
    assert_eq!(params[0], ("conv1_w", vec![20, 1, 5, 5], 1.0));
    assert_eq!(params[1], ("conv1_b", vec![20], 2.0));
    assert_eq!(params[4], ("ip1_w", vec![500, 800], 1.0));
    assert_eq!(params[8], ("feat_w", vec![2, 10], 1.0));

    let loss = net.forward().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    let outputs = net.outputs();
    assert_eq!(outputs.len(), 1);
    assert_eq!((outputs[0].0, outputs[0].1.data[0]), ("loss", loss));
    assert_eq!(net.output_loss_weights(), [1.0]);
    assert_eq!(net.blob("feat").unwrap().shape, [64, 2]);
    assert_eq!(net.data_positions(), [64]);

    // Data and Slice need no backward; both towers' convolutions do (they have parameters).
    let names = net.layer_names();
    let needs =
        |name: &str| net.layer_needs_backward(names.iter().position(|n| *n == name).unwrap());
    assert!(!needs("pair_data") && !needs("slice_pair"));
    assert!(needs("conv1") && needs("conv1_p") && needs("loss"));

    net.clear_param_diffs();
    net.backward();
    for p in net.learnable_params() {
        assert!(
            p.blob.diff.iter().any(|&d| d != 0.0),
            "{} got no gradient",
            p.name
        );
    }

    // Plain gradient descent on one batch lowers its loss.
    let mut last = loss;
    for _ in 0..3 {
        for p in net.learnable_params_mut() {
            let lr = 0.01 * p.lr_mult;
            for (w, d) in p.blob.data.iter_mut().zip(&p.blob.diff) {
                *w -= lr * d;
            }
        }
        net.set_data_positions(&[0]).unwrap();
        net.clear_param_diffs();
        let now = net.forward().unwrap();
        net.backward();
        assert!(now < last, "loss went from {last} to {now}");
        last = now;
    }
}

#[test]
fn same_seed_same_weights_and_test_net_copies_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = pair_db(dir.path(), 8);
    let Some(train_spec) = siamese_spec(&db, Phase::Train) else {
        return;
    };
    let a = Net::new(&train_spec, 7).unwrap();
    let b = Net::new(&train_spec, 7).unwrap();
    let c = Net::new(&train_spec, 8).unwrap();
    assert_eq!(a.learnable_params(), b.learnable_params());
    assert_ne!(a.learnable_params(), c.learnable_params());
    // xavier on conv2 [50, 20, 5, 5]: within ±sqrt(3 / 500).
    let bound = (3.0f32 / 500.0).sqrt();
    assert!(
        a.learnable_params()[2]
            .blob
            .data
            .iter()
            .all(|v| v.abs() <= bound)
    );

    let test_spec = siamese_spec(&db, Phase::Test).unwrap();
    let mut test = Net::new(&test_spec, 99).unwrap();
    test.copy_params_from(&a).unwrap();
    assert_eq!(test.learnable_params(), a.learnable_params());
    assert_eq!(test.blob("pair_data").unwrap().shape, [100, 2, 28, 28]);
}

/// Two towers sharing every parameter; the loss weight is 2. Input layers feed the pair.
const TINY: &str = r#"
name: "tiny_siamese"
layer { name: "pair" type: "Input" top: "pair" top: "sim"
        input_param { shape { dim: 4 dim: 2 dim: 6 dim: 6 } shape { dim: 4 } } }
layer { name: "slice" type: "Slice" bottom: "pair" top: "a" top: "b"
        slice_param { slice_dim: 1 slice_point: 1 } }
layer { name: "conv" type: "Convolution" bottom: "a" top: "conv"
        param { name: "cw" } param { name: "cb" lr_mult: 2 }
        convolution_param { num_output: 3 kernel_size: 3
          weight_filler { type: "xavier" } bias_filler { type: "uniform" min: -0.1 max: 0.1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        param { name: "iw" } param { name: "ib" }
        inner_product_param { num_output: 5 weight_filler { type: "xavier" }
          bias_filler { type: "constant" value: 0.2 } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "feat" type: "InnerProduct" bottom: "ip" top: "feat"
        param { name: "fw" } param { name: "fb" }
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "conv_p" type: "Convolution" bottom: "b" top: "conv_p"
        param { name: "cw" } param { name: "cb" lr_mult: 2 }
        convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "pool_p" type: "Pooling" bottom: "conv_p" top: "pool_p"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip_p" type: "InnerProduct" bottom: "pool_p" top: "ip_p"
        param { name: "iw" } param { name: "ib" } inner_product_param { num_output: 5 } }
layer { name: "relu_p" type: "ReLU" bottom: "ip_p" top: "ip_p" }
layer { name: "feat_p" type: "InnerProduct" bottom: "ip_p" top: "feat_p"
        param { name: "fw" } param { name: "fb" } inner_product_param { num_output: 2 } }
layer { name: "loss" type: "ContrastiveLoss" bottom: "feat" bottom: "feat_p" bottom: "sim"
        top: "loss" loss_weight: 2 contrastive_loss_param { margin: 1 } }
"#;

fn tiny_param() -> NetParameter {
    parse_net_text(TINY, "tiny.prototxt").unwrap()
}

fn tiny_net(seed: u64) -> Net {
    let spec = NetSpec::build(&tiny_param(), Phase::Train, None).unwrap();
    let mut net = Net::new(&spec, seed).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pair = net.blob_mut("pair").unwrap();
    pair.data
        .iter_mut()
        .for_each(|v| *v = rng.random_range(0.0..1.0));
    net.blob_mut("sim")
        .unwrap()
        .data
        .copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
    net
}

/// Net-level gradient check: every element of every shared parameter, central differences
/// of the total loss against `backward` (so both towers' contributions must be summed).
#[test]
fn shared_parameter_gradients_match_numerical_ones() {
    let mut net = tiny_net(3);
    net.clear_param_diffs();
    let loss = net.forward().unwrap();
    assert!(loss > 0.0);
    net.backward();
    let analytic: Vec<Vec<f32>> = net
        .learnable_params()
        .iter()
        .map(|p| p.blob.diff.clone())
        .collect();
    assert_eq!(analytic.len(), 6);
    let step = 1e-3f32;
    for (i, grads) in analytic.iter().enumerate() {
        for (j, &a) in grads.iter().enumerate() {
            let original = net.learnable_params()[i].blob.data[j];
            net.learnable_params_mut()[i].blob.data[j] = original + step;
            let plus = net.forward().unwrap() as f64;
            net.learnable_params_mut()[i].blob.data[j] = original - step;
            let minus = net.forward().unwrap() as f64;
            net.learnable_params_mut()[i].blob.data[j] = original;
            let numeric = (plus - minus) / (2.0 * step as f64);
            let scale = (a as f64).abs().max(numeric.abs()).max(0.1);
            assert!(
                (a as f64 - numeric).abs() <= 5e-3 * scale,
                "{} [{j}]: analytic {a} vs numeric {numeric}",
                net.learnable_params()[i].name
            );
        }
    }
    // Gradients accumulate until cleared.
    net.forward().unwrap();
    net.backward();
    let twice = &net.learnable_params()[0].blob.diff;
    assert!(
        twice
            .iter()
            .zip(&analytic[0])
            .all(|(t, a)| (t - 2.0 * a).abs() <= 1e-5 * a.abs().max(1.0))
    );
}

#[test]
fn in_place_relu_keeps_caffe_blob_semantics() {
    let mut net = tiny_net(5);
    net.forward().unwrap();
    // "ip" is the ReLU's output, as in Caffe where it runs in place.
    assert!(net.blob("ip").unwrap().data.iter().all(|&v| v >= 0.0));
    assert_eq!(net.input_names(), ["pair", "sim"]);
    assert!(!net.layer_needs_backward(0), "Input layers get no gradient");
    assert!(net.layer_flops(2) > 0, "convolution reports its FLOPs");
}

#[test]
fn caffemodel_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.caffemodel");
    let a = tiny_net(1);
    a.save_caffemodel(&path).unwrap();
    let mut b = tiny_net(2);
    assert_ne!(a.learnable_params(), b.learnable_params());
    b.load_caffemodel(&path).unwrap();
    assert_eq!(a.learnable_params(), b.learnable_params());
    // Caffe's layout: each layer carries its blobs, shared ones under both towers.
    let proto = a.to_proto();
    let conv_p = proto.layer.iter().find(|l| l.name() == "conv_p").unwrap();
    assert_eq!(conv_p.blobs.len(), 2);
    assert_eq!(conv_p.blobs[0].shape.as_ref().unwrap().dim, [3, 1, 3, 3]);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

fn legacy_blob(dims: [i32; 4], value: f32) -> BlobProto {
    BlobProto {
        num: Some(dims[0]),
        channels: Some(dims[1]),
        height: Some(dims[2]),
        width: Some(dims[3]),
        data: vec![value; dims.iter().product::<i32>() as usize],
        ..Default::default()
    }
}

/// A 2014-style weights file: V1 `layers` with legacy 4-D blob shapes.
#[test]
fn v1_caffemodel_with_legacy_shapes_loads() {
    use siamese_proto::v1_layer_parameter::LayerType;
    let v1 = |name: &str, kind: LayerType, blobs: Vec<BlobProto>| V1LayerParameter {
        name: Some(name.into()),
        r#type: Some(kind as i32),
        blobs,
        ..Default::default()
    };
    let file = NetParameter {
        name: Some("old".into()),
        layers: vec![
            v1(
                "conv",
                LayerType::Convolution,
                vec![
                    legacy_blob([3, 1, 3, 3], 0.5),
                    legacy_blob([1, 1, 1, 3], -1.0),
                ],
            ),
            v1(
                "ip",
                LayerType::InnerProduct,
                vec![
                    legacy_blob([1, 1, 5, 12], 0.25),
                    legacy_blob([1, 1, 1, 5], 0.0),
                ],
            ),
            v1(
                "unknown_layer",
                LayerType::InnerProduct,
                vec![legacy_blob([1, 1, 1, 1], 9.0)],
            ),
        ],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.caffemodel");
    std::fs::write(&path, prost::Message::encode_to_vec(&file)).unwrap();
    let mut net = tiny_net(1);
    let feat_before = net.learnable_params()[4].blob.clone();
    net.load_caffemodel(&path).unwrap();
    let p = net.learnable_params();
    assert!(p[0].blob.data.iter().all(|&v| v == 0.5) && p[1].blob.data == [-1.0; 3]);
    assert!(p[2].blob.data.iter().all(|&v| v == 0.25));
    assert_eq!(
        p[4].blob, feat_before,
        "layers absent from the file keep their weights"
    );
}

#[test]
fn weights_that_do_not_fit_are_rejected() {
    let mut net = tiny_net(1);
    let mut proto = net.to_proto();
    let conv = proto.layer.iter_mut().find(|l| l.name() == "conv").unwrap();
    conv.blobs[0].shape.as_mut().unwrap().dim = vec![3, 1, 5, 5];
    let err = net.load_proto(&proto).unwrap_err();
    assert_eq!(
        err.to_string(),
        "weights: layer \"conv\" blob 0: shape [3, 1, 5, 5] in the file, the net expects [3, 1, 3, 3]"
    );
    let mut proto = net.to_proto();
    proto
        .layer
        .iter_mut()
        .find(|l| l.name() == "ip")
        .unwrap()
        .blobs
        .pop();
    let err = net.load_proto(&proto).unwrap_err();
    assert_eq!(
        err.to_string(),
        "weights: layer \"ip\": 1 blobs in the file, the net expects 2"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = net
        .load_caffemodel(&dir.path().join("none.caffemodel"))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&dir.path().join("none.caffemodel").display().to_string())
    );
}

/// Weights trained in the siamese train net, loaded into Caffe's deploy net by layer name,
/// give the same features for the same images, whatever batch the Input is reshaped to.
#[test]
fn deploy_net_reproduces_train_features() {
    let dir = tempfile::tempdir().unwrap();
    let db = pair_db(dir.path(), 64);
    let Some(spec) = siamese_spec(&db, Phase::Train) else {
        return;
    };
    let mut train = Net::new(&spec, 11).unwrap();
    train.forward().unwrap();
    let weights = dir.path().join("train.caffemodel");
    train.save_caffemodel(&weights).unwrap();

    let mut deploy_param = load_net(&reference("v2/mnist_siamese.prototxt").unwrap()).unwrap();
    siamese_layers::embed::cap_input_batch(&mut deploy_param, 8);
    let deploy_spec = NetSpec::build(&deploy_param, Phase::Test, None).unwrap();
    let mut deploy = Net::new(&deploy_spec, 0).unwrap();
    assert_eq!(
        deploy.blob("data").unwrap().shape,
        [8, 1, 28, 28],
        "10000 capped to 8"
    );
    deploy.load_caffemodel(&weights).unwrap();
    deploy.reshape_input("data", &[5, 1, 28, 28]).unwrap();
    let images = &train.blob("data").unwrap().data[..5 * 784];
    deploy
        .blob_mut("data")
        .unwrap()
        .data
        .copy_from_slice(images);
    deploy.forward().unwrap();
    let (name, feat) = *deploy.outputs().last().unwrap();
    assert_eq!((name, feat.shape.as_slice()), ("feat", &[5usize, 2][..]));
    let want = &train.blob("feat").unwrap().data[..10];
    for (got, want) in feat.data.iter().zip(want) {
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{:?} vs {want:?}",
            feat.data
        );
    }
    let err = deploy.reshape_input("conv1", &[1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer \"conv1\": no Input layer has a top of this name"
    );
}

/// `embed_images` batches through the Input (declared 10000, capped to 4, used in batches of
/// 3 with a partial last one) and gives the same features as one image at a time.
#[test]
fn embedding_batches_through_the_input_layer() {
    let Some(model) = reference("v2/mnist_siamese.prototxt") else {
        return;
    };
    let mut param = load_net(&model).unwrap();
    siamese_layers::embed::cap_input_batch(&mut param, 4);
    let spec = NetSpec::build(&param, Phase::Test, None).unwrap();
    let mut net = Net::new(&spec, 0).unwrap();
    assert_eq!(net.blob("data").unwrap().shape, [4, 1, 28, 28]);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for p in net.learnable_params_mut() {
        p.blob
            .data
            .iter_mut()
            .for_each(|v| *v = rng.random_range(-0.1..0.1));
    }
    let images = siamese_data::idx::IdxImages {
        count: 7,
        rows: 28,
        cols: 28,
        pixels: (0..7 * 784).map(|_| rng.random::<u8>()).collect(),
    };
    let all = siamese_layers::embed::embed_images(&mut net, &images, 7, 1.0 / 256.0, 3).unwrap();
    assert_eq!((all.output.as_str(), all.dim, all.len()), ("feat", 2, 7));
    let one = siamese_layers::embed::embed_images(&mut net, &images, 5, 1.0 / 256.0, 1).unwrap();
    assert_eq!(one.len(), 5);
    for i in 0..5 {
        for (a, b) in all.row(i).iter().zip(one.row(i)) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                "image {i}: {a} vs {b}"
            );
        }
    }
    let small = siamese_data::idx::IdxImages {
        count: 1,
        rows: 14,
        cols: 14,
        pixels: vec![0; 196],
    };
    let err = siamese_layers::embed::embed_images(&mut net, &small, 1, 1.0, 8).unwrap_err();
    assert!(
        err.to_string().contains("does not take 14×14 images"),
        "{err}"
    );
}

/// `on_device(Cpu)` is `new`; on the CPU an update is always the caller's host step (a fused
/// SGD step is only a hint), and the update history round-trips with its sizes checked.
#[test]
fn on_device_cpu_is_new_and_updates_run_the_host_step() {
    let spec = NetSpec::build(&tiny_param(), Phase::Train, None).unwrap();
    let mut net = Net::on_device(&spec, 7, siamese_layers::Device::Cpu).unwrap();
    assert_eq!(net.device(), siamese_layers::Device::Cpu);
    assert_eq!(
        net.learnable_params(),
        Net::new(&spec, 7).unwrap().learnable_params()
    );
    net.synchronize().unwrap();
    let history: Vec<Vec<f32>> = net
        .learnable_params()
        .iter()
        .map(|p| vec![0.5; p.blob.count()])
        .collect();
    net.set_update_history(history.clone()).unwrap();
    assert_eq!(net.update_history().unwrap(), history);
    assert!(net.set_update_history(history[1..].to_vec()).is_err());
    let mut short = history.clone();
    short[0].pop();
    assert!(net.set_update_history(short).is_err());
    let before = net.learnable_params()[0].blob.data[0];
    let fused = siamese_layers::FusedSgd {
        rate: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
        l1: false,
    };
    net.update_params(Some(fused), |params, history| {
        params[0].blob.data[0] += 1.0;
        history[0][0] = 2.0;
    })
    .unwrap();
    assert_eq!(net.learnable_params()[0].blob.data[0], before + 1.0);
    assert_eq!(net.update_history().unwrap()[0][0], 2.0);
    assert_eq!(net.fetch_blob("pair").unwrap().unwrap().shape, [4, 2, 6, 6]);
    assert!(net.fetch_blob("nothing").unwrap().is_none());
}

/// Without the `cuda` feature a GPU request is a one-line error saying how to rebuild.
#[cfg(not(feature = "cuda"))]
#[test]
fn gpu_request_without_the_feature_says_how_to_rebuild() {
    let spec = NetSpec::build(&tiny_param(), Phase::Train, None).unwrap();
    let e = Net::on_device(&spec, 7, siamese_layers::Device::Gpu(0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GPU: this siamese was built without CUDA support; rebuild with `--features cuda`"
    );
}

/// A host backend that counts the products it is given and computes with the CPU's.
#[derive(Debug)]
struct CountingBackend {
    cpu: siamese_layers::CpuBackend,
    gemms: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl siamese_layers::Backend for CountingBackend {
    fn name(&self) -> &'static str {
        "counting"
    }

    fn gemm(&self, g: Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
        self.gemms
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.cpu.gemm(g, a, b, c);
    }

    fn im2col(&self, g: &ConvGeometry, batch: usize, images: &[f32], col: &mut [f32]) {
        self.cpu.im2col(g, batch, images, col);
    }

    fn col2im(&self, g: &ConvGeometry, batch: usize, col: &[f32], images: &mut [f32]) {
        self.cpu.col2im(g, batch, col, images);
    }

    fn max_pool_forward(
        &self,
        g: &PoolGeometry,
        n: usize,
        x: &[f32],
        y: &mut [f32],
        m: &mut [u32],
    ) {
        self.cpu.max_pool_forward(g, n, x, y, m);
    }

    fn max_pool_backward(&self, g: &PoolGeometry, n: usize, dy: &[f32], m: &[u32], dx: &mut [f32]) {
        self.cpu.max_pool_backward(g, n, dy, m, dx);
    }

    fn ave_pool_forward(&self, g: &PoolGeometry, n: usize, x: &[f32], y: &mut [f32]) {
        self.cpu.ave_pool_forward(g, n, x, y);
    }

    fn ave_pool_backward(&self, g: &PoolGeometry, n: usize, dy: &[f32], dx: &mut [f32]) {
        self.cpu.ave_pool_backward(g, n, dy, dx);
    }

    fn relu_forward(&self, slope: f32, x: &[f32], y: &mut [f32]) {
        self.cpu.relu_forward(slope, x, y);
    }

    fn relu_backward(&self, slope: f32, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        self.cpu.relu_backward(slope, x, dy, dx);
    }
}

/// The host `Backend` is a seam: a net built on another implementation runs its products
/// through it, to the same bits as on the CPU backend.
#[test]
fn a_net_runs_its_host_arithmetic_on_the_backend_it_is_given() {
    let spec = NetSpec::build(&tiny_param(), Phase::Train, None).unwrap();
    let gemms = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = CountingBackend {
        cpu: siamese_layers::CpuBackend::new(),
        gemms: gemms.clone(),
    };
    let mut on_counting = Net::with_backend(&spec, 7, Box::new(counting)).unwrap();
    let mut on_cpu = Net::new(&spec, 7).unwrap();
    assert_eq!(on_counting.backend_name(), "counting");
    let (a, b) = (on_counting.forward().unwrap(), on_cpu.forward().unwrap());
    assert_eq!(a.to_bits(), b.to_bits());
    let forward_gemms = gemms.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        forward_gemms > 0,
        "the products went through the given backend"
    );
    on_counting.backward();
    on_cpu.backward();
    assert!(gemms.load(std::sync::atomic::Ordering::Relaxed) > forward_gemms);
    assert_eq!(on_counting.learnable_params(), on_cpu.learnable_params());
}
