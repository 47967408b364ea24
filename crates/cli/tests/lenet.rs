//! LeNet digit classification as a user runs it: the project's experiments/lenet files train
//! on the embedded sample (converted with Caffe's convert_mnist_data layout), `siamese test`
//! scores the snapshot with Caffe's own LeNet net file, and Caffe's files as shipped train from
//! LMDBs laid out as in Caffe's example.

use siamese_testkit::repo;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Iterations trained by the end-to-end test (about 12 s in the dev profile).
const ITERATIONS: u32 = 200;
/// Test accuracy the run must exceed. With random_seed 1701 the sample's 2,000 test digits
/// score 0.912 after 100 iterations, 0.947 after 200, 0.9575 after 300 and 0.9725 after the
/// solver's 1,000 on an AVX-512 machine (the same bits in release and dev builds).
const MIN_ACCURACY: f32 = 0.9;

fn caffe_reference() -> Option<PathBuf> {
    let dir = repo().join("../shared/caffe-reference/v2");
    if dir.join("lenet_train_test.prototxt").exists() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: Caffe's reference files are not at {}",
            dir.display()
        );
        None
    }
}

fn siamese(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Lays out `dir` like the repository: experiments/lenet/ and the sample's single-image
/// databases in data/mnist-sample/ (what `cargo xtask create-mnist-db` writes).
fn repo_like(dir: &Path) {
    let lenet = dir.join("experiments/lenet");
    std::fs::create_dir_all(&lenet).unwrap();
    for file in ["lenet_solver.prototxt", "lenet_train_test.prototxt"] {
        std::fs::copy(
            repo().join("experiments/lenet").join(file),
            lenet.join(file),
        )
        .unwrap();
    }
    let sample = repo().join("data/mnist-sample");
    std::fs::create_dir_all(dir.join("data/mnist-sample")).unwrap();
    for (set, db) in [("train", "train"), ("t10k", "test")] {
        siamese_data::convert::create_mnist_db(
            &sample.join(format!("{set}-images-idx3-ubyte.gz")),
            &sample.join(format!("{set}-labels-idx1-ubyte.gz")),
            &dir.join(format!("data/mnist-sample/mnist_{db}_leveldb")),
            false,
        )
        .unwrap();
    }
}

/// The value of `name` in `siamese test`'s final lines (`accuracy = 0.95`,
/// `loss = 0.17 (* 1 = 0.17 loss)`).
fn score(stdout: &str, name: &str) -> f32 {
    let prefix = format!("{name} = ");
    stdout
        .lines()
        .filter(|l| !l.starts_with("Batch "))
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{name} = ` line in:\n{stdout}"))
}

/// The test outputs printed after `Iteration {iter}, Testing net (#0)`, as (name, value).
fn test_outputs(stdout: &str, iter: u32) -> Vec<(String, f32)> {
    let header = format!("Iteration {iter}, Testing net (#0)");
    stdout
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("Test net output #"))
        .map(|l| {
            let (_, rest) = l.split_once(": ").unwrap();
            let (name, value) = rest.split_once(" = ").unwrap();
            let value = value.split(' ').next().unwrap().parse().unwrap();
            (name.to_string(), value)
        })
        .collect()
}

#[test]
fn lenet_trains_on_the_sample_and_caffes_net_scores_it() {
    let dir = tempfile::tempdir().unwrap();
    repo_like(dir.path());
    let iterations = ITERATIONS.to_string();
    let out = siamese(
        dir.path(),
        &[
            "train",
            "--solver",
            "experiments/lenet/lenet_solver.prototxt",
            "--iterations",
            &iterations,
        ],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    // Caffe's test_initialization: before training the net scores about chance.
    let initial = test_outputs(&log, 0);
    assert_eq!(initial[0].0, "accuracy", "{log}");
    assert!(initial[0].1 < 0.3, "{initial:?}");
    let weights = format!("runs/lenet/lenet_iter_{ITERATIONS}.caffemodel");
    assert!(dir.path().join(&weights).exists(), "{log}");

    // The project's TEST net over the whole 2,000-digit test set.
    let model = "experiments/lenet/lenet_train_test.prototxt";
    let args = ["test", "--model", model, "--weights", &weights];
    let out = siamese(dir.path(), &[&args[..], &["--iterations", "20"]].concat());
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    let accuracy = score(&stdout, "accuracy");
    println!("accuracy after {ITERATIONS} iterations: {accuracy}");
    assert!(accuracy > MIN_ACCURACY, "accuracy {accuracy}\n{log}");
    let loss = score(&stdout, "loss");
    assert!(loss < 0.5, "loss {loss}\n{stdout}");

    // Caffe's own LeNet net file, with only its sources and backend pointed at the LevelDBs,
    // loads the same weights and gives the same scores.
    let Some(reference) = caffe_reference() else {
        return;
    };
    let caffe_net = std::fs::read_to_string(reference.join("lenet_train_test.prototxt"))
        .unwrap()
        .replace("examples/mnist/mnist_", "data/mnist-sample/mnist_")
        .replace("_lmdb", "_leveldb")
        .replace("backend: LMDB", "backend: LEVELDB");
    std::fs::write(dir.path().join("caffe_lenet.prototxt"), caffe_net).unwrap();
    let args = [
        "test",
        "--model",
        "caffe_lenet.prototxt",
        "--weights",
        &weights,
    ];
    let out = siamese(dir.path(), &[&args[..], &["--iterations", "20"]].concat());
    let caffe_stdout = text(&out);
    assert!(out.status.success(), "{caffe_stdout}");
    assert_eq!(score(&caffe_stdout, "accuracy"), accuracy);
    assert_eq!(score(&caffe_stdout, "loss"), loss);
}

/// Caffe's MNIST example as Caffe lays it out: its solver and net files unmodified in
/// examples/mnist/, beside the LMDBs `cargo xtask create-mnist-db --backend lmdb` writes.
#[test]
fn caffes_lenet_files_train_from_lmdbs_as_caffes_example_lays_them_out() {
    let Some(reference) = caffe_reference() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("examples/mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for file in ["lenet_solver.prototxt", "lenet_train_test.prototxt"] {
        std::fs::copy(reference.join(file), mnist.join(file)).unwrap();
    }
    let sample = repo().join("data/mnist-sample");
    for (set, db) in [("train", "train"), ("t10k", "test")] {
        siamese_data::convert::create_mnist_db_as(
            siamese_data::Backend::Lmdb,
            &sample.join(format!("{set}-images-idx3-ubyte.gz")),
            &sample.join(format!("{set}-labels-idx1-ubyte.gz")),
            &mnist.join(format!("mnist_{db}_lmdb")),
            false,
        )
        .unwrap();
    }
    let before = std::fs::read(mnist.join("mnist_train_lmdb/data.mdb")).unwrap();
    // 500 iterations: the solver's test_interval, so its own test (100 batches of 100) runs.
    let out = siamese(
        dir.path(),
        &[
            "train",
            "--solver",
            "examples/mnist/lenet_solver.prototxt",
            "--iterations",
            "500",
        ],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let tested = test_outputs(&log, 500);
    assert_eq!(tested[0].0, "accuracy", "{log}");
    assert!(tested[0].1 > 0.95, "{tested:?}\n{log}");
    assert!(mnist.join("lenet_iter_500.caffemodel").exists(), "{log}");
    // Read, never written: no lock file, the same bytes.
    let names: Vec<_> = std::fs::read_dir(mnist.join("mnist_train_lmdb"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["data.mdb"]);
    assert_eq!(
        std::fs::read(mnist.join("mnist_train_lmdb/data.mdb")).unwrap(),
        before
    );
}
