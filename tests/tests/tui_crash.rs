//! `siamese-tui --headless` with the real training engine, SIGKILLed mid-grid: the rerun skips
//! the cells already finished (their files untouched), resumes the interrupted cell from its last
//! snapshot, and ends with a complete summary; `siamese plot` and `siamese eval` read the cells'
//! log.csv and features.csv (one run record for both binaries).
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use siamese_e2e::{bin, repo, siamese};

const TRAIN_DIGITS: usize = 320;
const TEST_DIGITS: usize = 100;
const ITERATIONS: u32 = 40;
const CELLS: [&str; 3] = [
    "000-margin_1-batch_size_16",
    "001-margin_2-batch_size_16",
    "002-margin_3-batch_size_16",
];

/// A 3-cell grid (margins 1, 2, 3; batch 16; 40 iterations; snapshots every 5) on 320 + 100
/// sample digits. Returns the experiment file.
fn experiment(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    siamese_testkit::write_idx_slice("train", "train", &data, TRAIN_DIGITS);
    siamese_testkit::write_idx_slice("t10k", "t10k", &data, TEST_DIGITS);
    let siamese = repo().join("experiments/siamese");
    let text = format!(
        "name = \"crash\"\nsolver = {:?}\nnet = {:?}\ndata = {:?}\niterations = {ITERATIONS}\n\
         test_interval = 10\nsnapshot_interval = 5\nseed = 3\n\
         [grid]\nmargin = [1.0, 2.0, 3.0]\nbatch_size = [16]\n",
        siamese.join("mnist_siamese_solver.prototxt"),
        siamese.join("mnist_siamese_train_test.prototxt"),
        data,
    );
    let file = dir.join("crash.toml");
    fs::write(&file, text).unwrap();
    file
}

fn tui(file: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(bin("siamese-tui"));
    cmd.arg(file)
        .args(["--headless", "--workers", "1", "--threads", "1", "--out"])
        .arg(out);
    cmd
}

/// Iterations of the `<prefix>_iter_<N>.solverstate` files in a cell folder.
fn snapshots(cell: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(cell) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".solverstate")?;
            stem.rsplit_once("_iter_")?.1.parse().ok()
        })
        .collect()
}

/// Every file of a finished cell: name, contents and modification time.
fn files(cell: &Path) -> Vec<(String, Vec<u8>, SystemTime)> {
    let mut all: Vec<_> = fs::read_dir(cell)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(&path).unwrap(),
                fs::metadata(&path).unwrap().modified().unwrap(),
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// A CSV file (no quoted fields here) as rows of fields, header first.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn killed_tui_grid_skips_finished_cells_and_resumes_the_interrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path());
    let out = dir.path().join("runs");
    let grid = out.join("crash");
    let cell = |i: usize| grid.join(CELLS[i]);

    // First run: killed once cell 0 is finished and cell 1 has a snapshot but no done.toml.
    let first_log = dir.path().join("first.txt");
    let mut child = tui(&file, &out)
        .stdout(Stdio::from(fs::File::create(&first_log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("starting siamese-tui");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if cell(1).join("done.toml").exists() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cell 1 finished before it was seen mid-run; headless output:\n{}",
                fs::read_to_string(&first_log).unwrap_or_default()
            );
        }
        if cell(0).join("done.toml").exists() && !snapshots(&cell(1)).is_empty() {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "siamese-tui exited ({status}) before the kill point; headless output:\n{}",
                fs::read_to_string(&first_log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no finished cell 0 and snapshotted cell 1 within 60 s; headless output:\n{}",
            fs::read_to_string(&first_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    assert!(
        !cell(1).join("done.toml").exists(),
        "cell 1 finished before the kill landed; move the kill point"
    );
    let finished = files(&cell(0));
    assert!(
        finished.iter().any(|(n, ..)| n == "done.toml")
            && finished
                .iter()
                .any(|(n, ..)| n == &format!("mnist_siamese_iter_{ITERATIONS}.caffemodel")),
        "cell 0 lacks done.toml or its final model: {:?}",
        finished.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let resume_at = *snapshots(&cell(1)).iter().max().unwrap();
    assert!(resume_at < ITERATIONS, "cell 1 snapshot {resume_at}");

    // Temporary files as a kill mid-write leaves them (the solver's snapshots, the TUI's own
    // files), of a process that is gone, beside files that are not ours or not stale.
    let gone_pid = siamese_testkit::gone_pid();
    let snapshot = format!("mnist_siamese_iter_{}.caffemodel", resume_at + 5);
    let stale = [
        siamese_testkit::temp_name_of(&snapshot, gone_pid),
        siamese_testkit::temp_name_of("log.csv", gone_pid),
    ];
    let unrelated = [
        "notes.txt".to_string(),
        format!("notes.{gone_pid}.tmp"),
        siamese_testkit::temp_name_of("mnist_siamese_iter_99.solverstate", 1), // pid 1 runs
    ];
    for name in stale.iter().chain(&unrelated) {
        fs::write(cell(1).join(name), b"cut").unwrap();
    }

    // Second run, to completion.
    let second = tui(&file, &out).stderr(Stdio::piped()).output().unwrap();
    let lines = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "rerun failed ({}):\n{lines}\n{}",
        second.status,
        String::from_utf8_lossy(&second.stderr)
    );
    let expect = |line: String| assert!(lines.contains(&line), "no `{line}` in\n{lines}");
    expect(format!("[{}] already finished (P@1 ", CELLS[0]));
    expect(format!(
        "[{}] resumed at iteration {resume_at} of {ITERATIONS}",
        CELLS[1]
    ));
    expect(format!("[{}] started: {ITERATIONS} iterations", CELLS[2]));
    assert!(
        !lines.contains(&format!("[{}] started", CELLS[0]))
            && !lines.contains(&format!("[{}] resumed", CELLS[0])),
        "finished cell 0 ran again:\n{lines}"
    );
    let removed = lines
        .lines()
        .find(|l| l.starts_with(&format!("[{}] removed ", CELLS[1])))
        .unwrap_or_else(|| panic!("no removal reported for cell 1 in\n{lines}"));
    assert!(
        removed.contains(" cut short when an earlier run was killed: "),
        "{removed}"
    );
    for name in &stale {
        assert!(removed.contains(name.as_str()), "{name} not in `{removed}`");
        assert!(!cell(1).join(name).exists(), "{name} left");
    }
    for name in &unrelated {
        assert_eq!(fs::read(cell(1).join(name)).unwrap(), b"cut", "{name}");
    }
    // The finished cell's files are untouched: same names, bytes and modification times.
    assert!(files(&cell(0)) == finished, "cell 0's files changed");

    // The interrupted cell kept its log up to the snapshot and continued from there: every
    // training iteration exactly once (rows 0 to 39, Caffe's iteration numbers), with finite
    // losses, in `siamese train --log-csv`'s columns.
    let log = csv_rows(&cell(1).join("log.csv"));
    assert_eq!(
        log[0],
        ["iter", "lr", "train_loss", "test_loss", "elapsed_s"]
    );
    let train: Vec<u32> = log[1..]
        .iter()
        .filter(|r| !r[2].is_empty())
        .map(|r| {
            let loss: f64 = r[2].parse().unwrap();
            assert!(loss.is_finite(), "cell 1 loss {loss}");
            r[0].parse().unwrap()
        })
        .collect();
    assert_eq!(train, (0..ITERATIONS).collect::<Vec<_>>(), "cell 1 log.csv");
    siamese_reads_the_cell_files(&cell(1), &cell(0), dir.path());

    // summary.csv: one row per cell, all iterations, finite losses.
    let summary = csv_rows(&grid.join("summary.csv"));
    let col = |name: &str| {
        summary[0]
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column in {:?}", summary[0]))
    };
    let (iters, train_loss, test_loss) = (col("iterations"), col("train_loss"), col("test_loss"));
    assert_eq!(summary.len(), 1 + CELLS.len(), "{summary:?}");
    for (row, id) in summary[1..].iter().zip(CELLS) {
        assert_eq!(row[0], id);
        assert_eq!(row[iters], ITERATIONS.to_string(), "{id} iterations");
        for i in [train_loss, test_loss] {
            let loss: f64 = row[i].parse().unwrap();
            assert!(
                loss.is_finite() && loss >= 0.0,
                "{id} {}: {loss}",
                summary[0][i]
            );
        }
    }
}

/// `siamese plot --log`, `plot --features` and `eval` on a TUI cell's log.csv and features.csv
/// (the resumed cell's, against the other cell's features as the reference).
fn siamese_reads_the_cell_files(cell: &Path, reference: &Path, out: &Path) {
    let run = |args: &[&std::ffi::OsStr]| {
        let output = siamese().args(args).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "siamese {args:?}: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    };
    let png = |name: &str| {
        let path = out.join(name);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
    };
    let (log, features) = (cell.join("log.csv"), cell.join("features.csv"));
    let loss_png = out.join("loss.png");
    run(&[
        "plot".as_ref(),
        "--log".as_ref(),
        log.as_ref(),
        "--out".as_ref(),
        loss_png.as_ref(),
    ]);
    png("loss.png");
    let scatter_png = out.join("scatter.png");
    run(&[
        "plot".as_ref(),
        "--features".as_ref(),
        features.as_ref(),
        "--out".as_ref(),
        scatter_png.as_ref(),
    ]);
    png("scatter.png");
    let reference = reference.join("features.csv");
    let text = run(&[
        "eval".as_ref(),
        "--features".as_ref(),
        features.as_ref(),
        "--reference".as_ref(),
        reference.as_ref(),
    ]);
    assert!(
        text.starts_with(&format!("{TEST_DIGITS} test points, 10 classes")),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    for key in [
        "map_at_r",
        "nmi",
        "roc_auc",
        "verification_accuracy_mean",
        "knn_accuracy",
    ] {
        let v = json[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {text}"));
        assert!((0.0..=1.0).contains(&v), "{key} {v}");
    }
}
