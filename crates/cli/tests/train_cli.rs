//! `siamese train` as a user runs it: log lines, CSV log, JSON summary, and SIGINT
//! snapshotting and stopping a run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn setup(dir: &Path, max_iter: u32) -> PathBuf {
    let db = siamese_testkit::write_db(
        &dir.join("db"),
        siamese_testkit::ramp_datums(32, 1, |px| i32::from(px[0] > 128)),
    );
    let net = format!(
        r#"name: "tiny"
layer {{ name: "data" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.00390625 }} data_param {{ source: "{}" batch_size: 4 backend: LEVELDB }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 1 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" top: "loss" }}
"#,
        db.display()
    );
    std::fs::write(dir.join("net.prototxt"), net).unwrap();
    let solver = format!(
        "net: \"net.prototxt\"\ntest_iter: 2\ntest_interval: 4\nbase_lr: 0.01\nmomentum: 0.9\n\
         lr_policy: \"inv\"\ngamma: 0.0001\npower: 0.75\ndisplay: 2\nmax_iter: {max_iter}\n\
         snapshot: 0\nsnapshot_prefix: \"snaps/tiny\"\nrandom_seed: 1\n"
    );
    let path = dir.join("solver.prototxt");
    std::fs::write(&path, solver).unwrap();
    path
}

fn siamese() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
}

#[test]
fn train_prints_caffe_lines_and_writes_csv_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 8);
    let out = siamese()
        .current_dir(dir.path())
        .args([
            "train",
            "--solver",
            "solver.prototxt",
            "--log-csv",
            "log.csv",
        ])
        .args(["--json-summary", "sum.json", "--threads", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Iteration 2, lr = 0.00999"), "{stdout}");
    assert!(
        stdout.contains("    Test net output #0: loss = "),
        "{stdout}"
    );
    assert!(
        stdout.contains("Snapshotting to binary proto file snaps/tiny_iter_8.caffemodel"),
        "{stdout}"
    );
    assert!(dir.path().join("snaps/tiny_iter_8.solverstate").exists());
    let csv = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
    let iters: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(iters, ["0", "2", "4", "6", "8"], "{csv}");
    let sum: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sum.json")).unwrap())
            .unwrap();
    assert_eq!(sum["iterations"], 8);
    assert_eq!(sum["threads"], 1);
    assert!(sum["ms_per_iter_median"].as_f64().unwrap() > 0.0);
    assert!(sum["final_test_loss"].as_f64().is_some());
}

#[cfg(unix)]
#[test]
fn sigint_snapshots_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 100_000_000);
    let mut child = siamese()
        .current_dir(dir.path())
        .args(["train", "--solver", "solver.prototxt", "--threads", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // wait until training runs, then interrupt
    for line in lines.by_ref() {
        if line.unwrap().starts_with("Iteration 4 ") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    let stopped = rest
        .iter()
        .find(|l| l.starts_with("Optimization stopped early at iteration "))
        .expect("stop line");
    let iter: u32 = stopped
        .trim_end_matches('.')
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        dir.path()
            .join(format!("snaps/tiny_iter_{iter}.solverstate"))
            .exists(),
        "{rest:?}"
    );
}

/// `(iteration, loss)` of each `Iteration N (…), loss = X` or `Iteration N, loss = X` line of a
/// Caffe training log (glog prefixes allowed): the lines to compare against a reference log
/// from real Caffe on the same data.
fn caffe_log_losses(log: &str) -> Vec<(i32, f32)> {
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find("Iteration ")? + "Iteration ".len()..];
            let digits = rest.find(|c: char| !c.is_ascii_digit())?;
            let iter = rest[..digits].parse().ok()?;
            let (head, loss) = rest.split_once("loss = ")?;
            // `Iteration N, lr = …` and test lines carry no training loss.
            if head.contains("Testing") || head.contains("net output") {
                return None;
            }
            Some((iter, loss.split(' ').next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn caffe_log_lines_parse() {
    let log = "I0912 10:19:58.1 1 solver.cpp:228] Iteration 100, loss = 0.0456\n\
               I0912 10:19:58.1 1 solver.cpp:244]     Train net output #0: loss = 0.0456 (* 1 = 0.0456 loss)\n\
               I0912 10:19:58.1 1 sgd_solver.cpp:106] Iteration 100, lr = 0.00992565\n\
               I0912 10:19:58.1 1 solver.cpp:337] Iteration 500, Testing net (#0)\n\
               Iteration 200 (12.3 iter/s, 8.13s/100 iters), loss = 1.5e-05\n";
    assert_eq!(caffe_log_losses(log), [(100, 0.0456), (200, 1.5e-5)]);
}

/// The CSV log without its elapsed_s column.
fn csv_without_time(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

#[test]
fn two_runs_with_a_seed_log_identical_losses() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 12);
    let train = |csv: &str| {
        let out = siamese()
            .current_dir(dir.path())
            .args(["train", "--solver", "solver.prototxt", "--log-csv", csv])
            .args(["--threads", "2"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        stdout
    };
    let (first, second) = (train("a.csv"), train("b.csv"));
    let a = csv_without_time(&dir.path().join("a.csv"));
    assert_eq!(a, csv_without_time(&dir.path().join("b.csv")));
    assert_eq!(caffe_log_losses(&first), caffe_log_losses(&second));
    // The log lines carry the CSV's training losses (to the six digits they print).
    let logged = caffe_log_losses(&first);
    let csv_train: Vec<(i32, f32)> = a
        .iter()
        .skip(1)
        .filter_map(|row| {
            let cols: Vec<&str> = row.split(',').collect();
            Some((cols[0].parse().ok()?, cols[2].parse().ok()?))
        })
        .collect();
    assert_eq!(logged.len(), 7, "{first}");
    assert_eq!(logged.len(), csv_train.len(), "{a:?}");
    for ((i, x), (j, y)) in logged.iter().zip(&csv_train) {
        assert_eq!(i, j);
        assert!((x - y).abs() <= 1e-5 * y.abs(), "iteration {i}: {x} vs {y}");
    }
}

/// Runs `siamese ARGS` in `dir`: (success, stdout, stderr).
fn run_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = siamese().current_dir(dir).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Where no GPU can be used (every build without `--features cuda`; CI has no driver):
/// `--device gpu[:N]` on every command is refused with one line naming the flag and the reason,
/// and a solver file that says (or defaults to) `solver_mode: GPU` trains on the CPU, saying so.
#[test]
fn device_gpu_is_refused_with_the_reason_and_solver_mode_gpu_falls_back() {
    let Err(reason) = siamese_layers::probe_gpu(0) else {
        println!("skipped: GPU 0 can be used here");
        return;
    };
    let reason = reason.to_string();
    if !cfg!(feature = "cuda") {
        assert!(
            reason.contains("rebuild with `--features cuda`"),
            "{reason}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 2);
    let commands: [&[&str]; 4] = [
        &["train", "--solver", "solver.prototxt", "--device", "gpu"],
        &[
            "test",
            "--model",
            "net.prototxt",
            "--weights",
            "w.caffemodel",
        ],
        &["time", "--model", "net.prototxt", "--iterations", "1"],
        &[
            "embed",
            "--model",
            "net.prototxt",
            "--weights",
            "w.caffemodel",
        ],
    ];
    for (i, command) in commands.iter().enumerate() {
        let mut args = command.to_vec();
        if i > 0 {
            args.extend(["--device", "gpu:0"]);
        }
        if i == 3 {
            args.extend(["--images", "x-idx3-ubyte", "--out", "f.csv"]);
        }
        let (ok, stdout, stderr) = run_in(dir.path(), &args);
        assert!(!ok, "{args:?}: {stdout}");
        assert_eq!(
            stderr,
            format!("error: --device gpu:0: {reason}\n"),
            "{args:?}"
        );
    }

    let (ok, _, stderr) = run_in(dir.path(), &["time", "--model", "m", "--device", "tpu"]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "invalid value 'tpu' for '--device <DEVICE>': device \"tpu\": expected cpu, gpu or gpu:N"
        ),
        "{stderr}"
    );

    // setup's solver file has no solver_mode: Caffe's default, GPU
    let (ok, stdout, stderr) = run_in(dir.path(), &["train", "--solver", "solver.prototxt"]);
    assert!(ok, "{stdout}\n{stderr}");
    let note = format!(
        "note: solver_mode GPU (device_id 0): {reason}; running on the CPU (pass --device gpu to \
         make this an error)"
    );
    assert_eq!(stdout.matches(&note).count(), 1, "{stdout}");
    assert!(stdout.contains("Using the CPU ("), "{stdout}");
    let (ok, stdout, _) = run_in(
        dir.path(),
        &["train", "--solver", "solver.prototxt", "--device", "cpu"],
    );
    assert!(ok && !stdout.contains("note:"), "{stdout}");
}
