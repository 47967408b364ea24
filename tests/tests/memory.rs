//! The memory budget through the real binaries: the estimate `siamese train` makes before it
//! allocates is within 20% of the peak RSS it then reaches (siamese and LeNet nets, batch 64
//! and 4,096), and nets or grid cells too big for the machine are a one-line error, not an abort.
#![cfg(target_os = "linux")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use siamese_data::Datum;
use siamese_e2e::{bin, repo, siamese};
use siamese_testkit::{random_pair_datums, write_db};

/// `n` random 1 × 28 × 28 digits labelled 0..9 (LeNet's input); keys `%08d`.
fn digit_datums(n: usize) -> Vec<(String, Datum)> {
    (0..n)
        .map(|i| {
            let datum = Datum {
                channels: Some(1),
                height: Some(28),
                width: Some(28),
                data: Some((0..784).map(|j| ((i * 31 + j * 7) % 256) as u8).collect()),
                label: Some((i % 10) as i32),
                ..Default::default()
            };
            (format!("{i:08}"), datum)
        })
        .collect()
}

/// Our train/test net `net` (under experiments/) with both batch sizes set to `batch` and its
/// two data sources pointing at `train` and `test`, and a one-iteration solver for it with one
/// test batch; returns the solver file.
fn training(dir: &Path, net: &str, batch: usize, train: &Path, test: &Path) -> PathBuf {
    let text = fs::read_to_string(repo().join("experiments").join(net)).unwrap();
    let mut sources = [train, test].into_iter();
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let key = line.trim_start();
            if key.starts_with("batch_size:") {
                format!("    batch_size: {batch}")
            } else if key.starts_with("source:") {
                format!("    source: {:?}", sources.next().expect("two sources"))
            } else {
                line.to_string()
            }
        })
        .collect();
    let net_file = dir.join("net.prototxt");
    fs::write(&net_file, lines.join("\n")).unwrap();
    let solver = dir.join("solver.prototxt");
    let solver_text = format!(
        "net: {:?}\ntest_iter: 1\ntest_interval: 100\nbase_lr: 0.01\nmomentum: 0.9\n\
         lr_policy: \"fixed\"\nmax_iter: 1\nsnapshot_prefix: {:?}\nrandom_seed: 3\nsolver_mode: CPU\n",
        net_file,
        dir.join("snap")
    );
    fs::write(&solver, solver_text).unwrap();
    solver
}

/// Trains one iteration on one thread; returns (estimate, peak RSS) in MiB from --json-summary.
fn estimate_and_peak(solver: &Path, dir: &Path) -> (f64, f64) {
    let summary = dir.join("summary.json");
    let out = siamese()
        .args(["train", "--threads", "1", "--solver"])
        .arg(solver)
        .arg("--json-summary")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(summary).unwrap()).unwrap();
    (
        json["memory_estimate_mb"].as_f64().unwrap(),
        json["peak_rss_mb"].as_f64().unwrap(),
    )
}

fn check_estimate(net: &str, batch: usize, records: fn(usize) -> Vec<(String, Datum)>) {
    let dir = tempfile::tempdir().unwrap();
    let train = write_db(&dir.path().join("train_leveldb"), records(8000));
    let test = write_db(&dir.path().join("test_leveldb"), records(2000));
    let solver = training(dir.path(), net, batch, &train, &test);
    let (estimate, peak) = estimate_and_peak(&solver, dir.path());
    let off = (estimate - peak).abs() / peak;
    assert!(
        off <= 0.2,
        "{net} at batch {batch}: estimate {estimate:.1} MiB, peak RSS {peak:.1} MiB ({:.0}% off)",
        off * 100.0
    );
}

fn pairs(n: usize) -> Vec<(String, Datum)> {
    random_pair_datums(n, 11)
}

#[test]
fn the_estimate_is_within_a_fifth_of_peak_rss_for_siamese_at_batch_64() {
    check_estimate("siamese/mnist_siamese_train_test.prototxt", 64, pairs);
}

#[test]
fn the_estimate_is_within_a_fifth_of_peak_rss_for_siamese_at_batch_4096() {
    check_estimate("siamese/mnist_siamese_train_test.prototxt", 4096, pairs);
}

#[test]
fn the_estimate_is_within_a_fifth_of_peak_rss_for_lenet_at_batch_64() {
    check_estimate("lenet/lenet_train_test.prototxt", 64, digit_datums);
}

#[test]
fn the_estimate_is_within_a_fifth_of_peak_rss_for_lenet_at_batch_4096() {
    check_estimate("lenet/lenet_train_test.prototxt", 4096, digit_datums);
}

/// The one line a failed run wrote to stderr; the run exited 1, not by a signal.
fn one_error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {stderr}");
    lines[0].to_string()
}

/// `text` with ip1's 500 outputs made 20,000,000 (a typo's worth of zeros).
fn huge_ip1(text: &str) -> String {
    text.replace("num_output: 500", "num_output: 20000000")
}

#[test]
fn training_a_net_too_big_for_memory_is_an_error_naming_its_biggest_parts() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_db(&dir.path().join("train_leveldb"), pairs(100));
    let test = write_db(&dir.path().join("test_leveldb"), pairs(100));
    let solver = training(
        dir.path(),
        "siamese/mnist_siamese_train_test.prototxt",
        64,
        &train,
        &test,
    );
    let net = dir.path().join("net.prototxt");
    fs::write(&net, huge_ip1(&fs::read_to_string(&net).unwrap())).unwrap();
    let out = siamese()
        .args(["train", "--solver"])
        .arg(&solver)
        .output()
        .unwrap();
    let line = one_error_line(&out);
    for piece in [
        net.to_str().unwrap(),
        "needs",
        "ip1 weights 20000000 × 800 (value, gradient) = 128.0 GB",
        "available (",
    ] {
        assert!(line.contains(piece), "{line}\n  lacks: {piece}");
    }
    assert!(!dir.path().join("snap_iter_1.caffemodel").exists());
}

#[test]
fn embedding_with_a_net_too_big_for_memory_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let deploy = dir.path().join("deploy.prototxt");
    let text =
        fs::read_to_string(repo().join("experiments/siamese/mnist_siamese.prototxt")).unwrap();
    fs::write(&deploy, huge_ip1(&text)).unwrap();
    let weights = dir.path().join("w.caffemodel");
    fs::write(&weights, b"").unwrap();
    let features = dir.path().join("f.csv");
    let out = siamese()
        .args(["embed", "--model"])
        .arg(&deploy)
        .arg("--weights")
        .arg(&weights)
        .arg("--images")
        .arg(repo().join("data/mnist-sample/t10k-images-idx3-ubyte.gz"))
        .arg("--out")
        .arg(&features)
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(
        line.contains("needs") && line.contains("ip1 weights"),
        "{line}"
    );
    assert!(!features.exists());
}

#[test]
fn siamese_net_prints_the_memory_estimate() {
    let out = siamese()
        .args(["net", "--model"])
        .arg(repo().join("experiments/siamese/mnist_siamese.prototxt"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("memory: "))
        .unwrap_or_else(|| panic!("no memory line in:\n{stdout}"));
    // Caffe's deploy net embeds 10,000 digits at once.
    assert!(line.starts_with("memory: 2.1 GB for this net ("), "{line}");
    assert!(
        stdout
            .contains("\n  conv1 top \"conv1\" 10000 × 20 × 24 × 24 (data, gradient) = 921.6 MB\n"),
        "{stdout}"
    );
}

#[test]
fn a_grid_cell_too_big_for_memory_stops_the_grid_before_any_cell_trains() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    siamese_testkit::write_idx_slice("train", "train", &data, 200);
    siamese_testkit::write_idx_slice("t10k", "t10k", &data, 100);
    let siamese_dir = repo().join("experiments/siamese");
    let file = dir.path().join("big.toml");
    let text = format!(
        "name = \"big\"\nsolver = {:?}\nnet = {:?}\ndata = {:?}\niterations = 10\n\
         test_interval = 10\n[grid]\nbatch_size = [16, 100000000]\n",
        siamese_dir.join("mnist_siamese_solver.prototxt"),
        siamese_dir.join("mnist_siamese_train_test.prototxt"),
        data,
    );
    fs::write(&file, text).unwrap();
    let out_dir = dir.path().join("runs");
    let out = Command::new(bin("siamese-tui"))
        .arg(&file)
        .args(["--headless", "--workers", "1", "--out"])
        .arg(&out_dir)
        .current_dir(repo())
        .output()
        .unwrap();
    let line = one_error_line(&out);
    for piece in [
        "cell 001-batch_size_100000000 needs",
        "conv1 top \"conv1\" 100000000 × 20 × 24 × 24 (data, gradient) = 9.2 TB",
        "available (",
    ] {
        assert!(line.contains(piece), "{line}\n  lacks: {piece}");
    }
    let small = out_dir.join("big/000-batch_size_16");
    assert!(
        !small.join("log.csv").exists() && !small.join("done.toml").exists(),
        "a cell trained before the check"
    );
}
