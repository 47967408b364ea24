//! What the `siamese` command's tests share: Caffe's siamese deploy net, seeded random
//! weights saved as a .caffemodel, and running the built binary.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use siamese_layers::Net;
use siamese_layers::embed::cap_input_batch;
use siamese_net::{NetSpec, load_net};
use siamese_proto::Phase;

/// Caffe's mnist_siamese.prototxt (the deploy net), or `None` (the test says it skips).
pub fn deploy_model() -> Option<PathBuf> {
    siamese_testkit::caffe_reference("v2/mnist_siamese.prototxt")
}

/// The deploy net `model` with random weights (seeded), saved as a .caffemodel at `out`.
pub fn random_weights(model: &Path, out: &Path) -> Net {
    let mut param = load_net(model).unwrap();
    cap_input_batch(&mut param, 64);
    let mut net = Net::new(&NetSpec::build(&param, Phase::Test, None).unwrap(), 0).unwrap();
    for (i, p) in net.learnable_params_mut().iter_mut().enumerate() {
        p.blob.data = siamese_testkit::seeded_uniform(p.blob.data.len(), 5 + i as u64, 0.05);
    }
    net.save_caffemodel(out).unwrap();
    net
}

/// Runs the `siamese` binary with `args`.
pub fn siamese(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
        .args(args)
        .output()
        .unwrap()
}

/// A path as an argument.
pub fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// Stderr of a run that must have failed, checked to be one `error: ` line.
pub fn one_line_error(run: &Output) -> String {
    assert!(!run.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// Asserts that `run` succeeded, showing its stderr when not; returns its stdout.
pub fn success(run: &Output) -> String {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).to_string()
}
