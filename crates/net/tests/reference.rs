//! Caffe's own example files (v2 and the 2014 V1 syntax) load unmodified and give the nets
//! Caffe builds; the `siamese net` tables and the siamese DOT are snapshot-tested.

use std::path::{Path, PathBuf};

use prost::Message;
use siamese_net::{LayerKind, NetSpec, dot, load_net, load_solver, resolve_solver_paths, table};
use siamese_proto::{Datum, Phase};

fn reference_dir() -> PathBuf {
    let candidates = [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/caffe-reference"
        ),
        "/work/shared/caffe-reference",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!("Caffe's reference prototxt files are missing; looked in {candidates:?}")
        })
}

/// A folder laid out like Caffe's tree, holding one-record LevelDBs of 2x28x28 pairs at the
/// siamese example's source paths, so Data layers get their shapes as in Caffe.
fn fake_caffe_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for name in [
        "examples/siamese/mnist_siamese_train_leveldb",
        "examples/siamese/mnist_siamese_test_leveldb",
        "data/mnist/siamese_train_leveldb",
        "data/mnist/siamese_test_leveldb",
    ] {
        let path = root.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        let mut db = rusty_leveldb::DB::open(&path, rusty_leveldb::Options::default()).unwrap();
        let datum = Datum {
            channels: Some(2),
            height: Some(28),
            width: Some(28),
            data: Some(vec![0; 2 * 28 * 28]),
            label: Some(1),
            ..Default::default()
        };
        db.put(b"00000000", &datum.encode_to_vec()).unwrap();
        db.flush().unwrap();
    }
    root
}

fn build(file: &str, phase: Phase, base: &Path) -> NetSpec {
    let param = load_net(&reference_dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
    NetSpec::build(&param, phase, Some(base)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn net_tables() {
    let root = fake_caffe_root();
    for (file, phases) in [
        (
            "v2/mnist_siamese_train_test.prototxt",
            &[Phase::Train, Phase::Test][..],
        ),
        ("v2/mnist_siamese.prototxt", &[Phase::Test][..]),
        (
            "v2/lenet_train_test.prototxt",
            &[Phase::Train, Phase::Test][..],
        ),
        ("v2/lenet.prototxt", &[Phase::Test][..]),
        (
            "v1-2014/mnist_siamese_train_test.prototxt",
            &[Phase::Train][..],
        ),
        ("v1-2014/mnist_siamese.prototxt", &[Phase::Test][..]),
    ] {
        for &phase in phases {
            let net = build(file, phase, root.path());
            let name = format!(
                "{}_{}",
                file.trim_end_matches(".prototxt").replace('/', "_"),
                phase.as_str_name().to_lowercase()
            );
            insta::assert_snapshot!(name, table::render(&net));
        }
    }
}

#[test]
fn siamese_train_dot() {
    let root = fake_caffe_root();
    let net = build(
        "v2/mnist_siamese_train_test.prototxt",
        Phase::Train,
        root.path(),
    );
    insta::assert_snapshot!("siamese_train_dot", dot::render(&net));
}

#[test]
fn v1_and_v2_siamese_give_the_same_net() {
    let root = fake_caffe_root();
    for phase in [Phase::Train, Phase::Test] {
        let v1 = build(
            "v1-2014/mnist_siamese_train_test.prototxt",
            phase,
            root.path(),
        );
        let v2 = build("v2/mnist_siamese_train_test.prototxt", phase, root.path());
        assert_eq!(v1.blobs, v2.blobs);
        assert_eq!(v1.params, v2.params);
        assert_eq!(v1.outputs, v2.outputs);
        assert_eq!(v1.layers.len(), v2.layers.len());
        for (a, b) in v1.layers.iter().zip(&v2.layers) {
            assert_eq!(
                (
                    &a.name,
                    a.kind(),
                    &a.bottoms,
                    &a.tops,
                    &a.params,
                    &a.loss_weights
                ),
                (
                    &b.name,
                    b.kind(),
                    &b.bottoms,
                    &b.tops,
                    &b.params,
                    &b.loss_weights
                )
            );
            assert_eq!(a.proto.param, b.proto.param, "{}", a.name);
            assert_eq!(
                a.proto.transform_param, b.proto.transform_param,
                "{}",
                a.name
            );
            assert_eq!(a.data_source, b.data_source);
        }
        assert_eq!(table::render(&v1), table::render(&v2));
    }
    // The deploy nets: V1's net-level input becomes an Input layer named "input".
    let v1 = build("v1-2014/mnist_siamese.prototxt", Phase::Test, root.path());
    let v2 = build("v2/mnist_siamese.prototxt", Phase::Test, root.path());
    assert_eq!(v1.blobs, v2.blobs);
    assert_eq!(
        v1.params.iter().map(|p| &p.shape).collect::<Vec<_>>(),
        v2.params.iter().map(|p| &p.shape).collect::<Vec<_>>()
    );
}

#[test]
fn siamese_train_net_is_caffes() {
    let root = fake_caffe_root();
    let net = build(
        "v2/mnist_siamese_train_test.prototxt",
        Phase::Train,
        root.path(),
    );
    // Two towers of conv1, conv2, ip1, ip2, feat sharing 10 parameter blobs.
    assert_eq!(net.params.len(), 10);
    assert!(net.params.iter().all(|p| p.users.len() == 2));
    assert_eq!(net.param_count(), Some(431_102));
    let conv1_w = net
        .params
        .iter()
        .find(|p| p.name.as_deref() == Some("conv1_w"))
        .unwrap();
    assert_eq!(conv1_w.shape, [20, 1, 5, 5]);
    assert_eq!((conv1_w.lr_mult, conv1_w.decay_mult), (1.0, 1.0));
    assert_eq!(conv1_w.filler.as_ref().unwrap().r#type(), "xavier");
    let bias = net
        .params
        .iter()
        .find(|p| p.name.as_deref() == Some("conv1_b"))
        .unwrap();
    assert_eq!(bias.lr_mult, 2.0);
    let loss = net.layers.iter().find(|l| l.name == "loss").unwrap();
    assert_eq!(loss.loss_weights, [1.0]);
    assert_eq!(
        net.blobs[net.blob_id("feat").unwrap()].shape,
        Some(vec![64, 2])
    );
    assert_eq!(net.outputs, [net.blob_id("loss").unwrap()]);
    let data = &net.layers[0];
    assert!(
        data.data_source
            .as_ref()
            .unwrap()
            .ends_with("examples/siamese/mnist_siamese_train_leveldb")
    );
    assert!(net.warnings.is_empty(), "{:?}", net.warnings);
    // ReLU runs in place.
    let relu = net.layers.iter().find(|l| l.name == "relu1").unwrap();
    assert_eq!(relu.tops, relu.bottoms);
}

#[test]
fn lenet_test_net_gets_caffes_splits_and_a_warning() {
    let net = build(
        "v2/lenet_train_test.prototxt",
        Phase::Test,
        Path::new("/nonexistent"),
    );
    let splits: Vec<(&str, Vec<&str>)> = net
        .layers
        .iter()
        .filter(|l| l.kind() == LayerKind::Split)
        .map(|l| {
            (
                l.name.as_str(),
                l.tops.iter().map(|&t| net.blobs[t].name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        splits,
        [
            (
                "label_mnist_1_split",
                vec!["label_mnist_1_split_0", "label_mnist_1_split_1"]
            ),
            (
                "ip2_ip2_0_split",
                vec!["ip2_ip2_0_split_0", "ip2_ip2_0_split_1"]
            ),
        ]
    );
    let acc = net.layers.iter().find(|l| l.name == "accuracy").unwrap();
    assert_eq!(net.blobs[acc.bottoms[0]].name, "ip2_ip2_0_split_0");
    assert_eq!(net.blobs[acc.bottoms[1]].name, "label_mnist_1_split_0");
    assert_eq!(acc.loss_weights, [0.0]);
    assert_eq!(net.warnings.len(), 1, "{:?}", net.warnings);
    assert!(
        net.warnings[0].contains("examples/mnist/mnist_test_lmdb"),
        "{}",
        net.warnings[0]
    );
    // The LMDB does not exist here (it is read when it does: crates/cli/tests/lenet.rs).
    assert!(
        net.warnings[0].contains(": not found; shapes that depend on it are unknown"),
        "{}",
        net.warnings[0]
    );
    assert!(net.require_shapes().is_err());
    // The train net has no accuracy layer, hence no splits.
    let train = build(
        "v2/lenet_train_test.prototxt",
        Phase::Train,
        Path::new("/nonexistent"),
    );
    assert!(train.layers.iter().all(|l| l.kind() != LayerKind::Split));
    assert_eq!(
        train.param_count(),
        None,
        "conv1's input channels come from the LMDB"
    );
    let deploy = build("v2/lenet.prototxt", Phase::Test, Path::new("/nonexistent"));
    assert_eq!(deploy.param_count(), Some(431_080));
}

#[test]
fn solvers_load_with_caffes_values() {
    for file in [
        "v2/mnist_siamese_solver.prototxt",
        "v1-2014/mnist_siamese_solver.prototxt",
        "v2/lenet_solver.prototxt",
    ] {
        let path = reference_dir().join(file);
        let s = load_solver(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.base_lr(), 0.01);
        assert_eq!(s.momentum(), 0.9);
        assert_eq!(s.lr_policy(), "inv");
        assert_eq!((s.gamma(), s.power()), (0.0001, 0.75));
        assert_eq!(s.test_iter, [100]);
        assert_eq!(s.test_interval(), 500);
        assert_eq!(
            s.solver_mode(),
            siamese_proto::solver_parameter::SolverMode::Gpu
        );
        let paths = resolve_solver_paths(&s, &path);
        assert!(paths.net.unwrap().ends_with(s.net()));
    }
}

#[test]
fn our_experiment_files_describe_caffes_net_and_solver() {
    let root = fake_caffe_root();
    let ours_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/siamese");
    for (ours, theirs, phases) in [
        (
            "mnist_siamese_train_test.prototxt",
            "v2/mnist_siamese_train_test.prototxt",
            &[Phase::Train, Phase::Test][..],
        ),
        (
            "mnist_siamese.prototxt",
            "v2/mnist_siamese.prototxt",
            &[Phase::Test][..],
        ),
    ] {
        let param = load_net(&ours_dir.join(ours)).unwrap_or_else(|e| panic!("{e}"));
        for &phase in phases {
            let a = NetSpec::build(&param, phase, Some(root.path())).unwrap();
            let b = build(theirs, phase, root.path());
            assert_eq!(a.blobs, b.blobs, "{ours}");
            if phases.len() == 2 {
                assert_eq!(a.params, b.params, "{ours}");
            } else {
                // Our deploy net also names its parameters and fillers; Caffe's does not.
                let shapes = |n: &NetSpec| {
                    n.params
                        .iter()
                        .map(|p| (p.shape.clone(), p.lr_mult))
                        .collect::<Vec<_>>()
                };
                assert_eq!(shapes(&a), shapes(&b), "{ours}");
            }
            let shape = |n: &NetSpec| {
                n.layers
                    .iter()
                    .map(|l| {
                        (
                            l.name.clone(),
                            l.kind(),
                            l.bottoms.clone(),
                            l.tops.clone(),
                            l.loss_weights.clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(shape(&a), shape(&b), "{ours}");
            assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        }
    }
    let ours = load_solver(&ours_dir.join("mnist_siamese_solver.prototxt")).unwrap();
    let theirs = load_solver(&reference_dir().join("v2/mnist_siamese_solver.prototxt")).unwrap();
    assert_eq!(
        (ours.base_lr(), ours.momentum(), ours.weight_decay()),
        (theirs.base_lr(), theirs.momentum(), theirs.weight_decay())
    );
    assert_eq!(
        (ours.lr_policy(), ours.gamma(), ours.power()),
        (theirs.lr_policy(), theirs.gamma(), theirs.power())
    );
    assert_eq!(
        ours.solver_mode(),
        siamese_proto::solver_parameter::SolverMode::Cpu
    );
    assert_eq!(ours.test_iter, [20]);
    assert!(ours.snapshot_prefix().starts_with("runs/"));
}
