//! Two `siamese-tui --headless` runners started at once on one runs folder, with the real
//! training engine: their cell claims split the grid, so each cell trains exactly once.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use siamese_e2e::{bin, repo};

const CELLS: [&str; 4] = [
    "000-margin_1-batch_size_16",
    "001-margin_2-batch_size_16",
    "002-margin_3-batch_size_16",
    "003-margin_4-batch_size_16",
];

/// A 4-cell margin grid of 30 iterations (batch 16, snapshots every 10) on 320 + 100 sample digits.
fn experiment(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    siamese_testkit::write_idx_slice("train", "train", &data, 320);
    siamese_testkit::write_idx_slice("t10k", "t10k", &data, 100);
    let siamese = repo().join("experiments/siamese");
    let text = format!(
        "name = \"shared\"\nsolver = {:?}\nnet = {:?}\ndata = {:?}\niterations = 30\n\
         test_interval = 10\nsnapshot_interval = 10\nseed = 5\n\
         [grid]\nmargin = [1.0, 2.0, 3.0, 4.0]\nbatch_size = [16]\n",
        siamese.join("mnist_siamese_solver.prototxt"),
        siamese.join("mnist_siamese_train_test.prototxt"),
        data,
    );
    let file = dir.join("shared.toml");
    fs::write(&file, text).unwrap();
    file
}

/// A headless runner on `out`, started now (so that two run at once).
fn start_runner(file: &Path, out: &Path) -> Child {
    Command::new(bin("siamese-tui"))
        .arg(file)
        .args(["--headless", "--workers", "1", "--threads", "1", "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting siamese-tui")
}

/// The cells an output's `[cell] finished …` lines name.
fn finished(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split_once("] finished "))
        .map(|(cell, _)| cell.to_string())
        .collect()
}

#[test]
fn two_runners_on_one_folder_train_each_cell_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path());
    let out = dir.path().join("runs");
    let children: Vec<Child> = (0..2).map(|_| start_runner(&file, &out)).collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(
            o.status.success(),
            "a runner failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mut trained: Vec<String> = outputs.iter().flat_map(finished).collect();
    trained.sort();
    assert_eq!(trained, CELLS, "each cell finished by exactly one runner");
    let summary = fs::read_to_string(out.join("shared/summary.csv")).unwrap();
    let header: Vec<&str> = summary.lines().next().unwrap().split(',').collect();
    let iterations = header.iter().position(|c| *c == "iterations").unwrap();
    let rows: Vec<&str> = summary.lines().skip(1).collect();
    assert_eq!(rows.len(), CELLS.len(), "{summary}");
    for (row, cell) in rows.iter().zip(CELLS) {
        assert!(row.starts_with(&format!("{cell},")), "{row}");
        assert_eq!(
            row.split(',').nth(iterations),
            Some("30"),
            "{cell} not finished: {row}"
        );
    }
}
