//! A real single-node Slurm cluster on this machine (`.ci/slurm-up.sh`: munge, slurmctld and
//! slurmd on loopback): `siamese-tui slurm --submit` runs a 3-cell array, and summary.csv lists
//! the three cells. Ignored by default (it needs root and apt); `.ci/run` runs it with
//! `cargo test -p siamese-tui --test slurm_cluster -- --ignored --nocapture`.
//! When Slurm cannot start, the test fails and says why.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use siamese_grid::cell_progress::{CellStatus, RunState};
use siamese_testkit::repo;

const BIN: &str = env!("CARGO_BIN_EXE_siamese-tui");
const EXPERIMENT: &str = "name = \"cluster_tiny\"\niterations = 20\ntest_interval = 10\nsnapshot_interval = 10\n[grid]\nmargin = [0.5, 1, 2]\n";
const CELLS: [&str; 3] = ["000-margin_0.5", "001-margin_1", "002-margin_2"];

/// Seconds to wait for the array (default 600; SIAMESE_SLURM_TEST_TIMEOUT_S overrides).
fn timeout() -> Duration {
    let s = std::env::var("SIAMESE_SLURM_TEST_TIMEOUT_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(s)
}

fn start_slurm() {
    let t0 = Instant::now();
    let script = repo().join(".ci/slurm-up.sh");
    let output = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("Slurm cannot start: running {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Slurm cannot start ({}, {}):\n{stderr}",
        script.display(),
        output.status
    );
    eprintln!(
        "{}slurm cluster ready in {:.1} s",
        stderr,
        t0.elapsed().as_secs_f64()
    );
}

/// How a cell ended, from its files: `Ok` finished, `Err` failed (with where and why).
fn ended(cell_dir: &Path) -> Option<Result<(), String>> {
    if cell_dir.join("done.toml").is_file() {
        return Some(Ok(()));
    }
    match CellStatus::read(cell_dir)? {
        Ok(s) if s.state == RunState::Failed || s.state == RunState::Stopped => Some(Err(format!(
            "{:?} on {} (job {}): {}",
            s.state,
            s.host,
            s.job.as_deref().unwrap_or("?"),
            s.error.as_deref().unwrap_or("-")
        ))),
        _ => None,
    }
}

fn task_logs(grid: &Path) -> String {
    let mut logs: Vec<PathBuf> = fs::read_dir(grid.join("slurm"))
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    logs.retain(|p| p.extension().is_some_and(|e| e == "out"));
    logs.sort();
    logs.iter()
        .map(|p| {
            format!(
                "--- {}\n{}",
                p.display(),
                fs::read_to_string(p).unwrap_or_default()
            )
        })
        .collect()
}

#[test]
#[ignore = "starts a real Slurm cluster (root, apt-get); .ci/run runs it with --ignored"]
fn a_three_cell_array_runs_on_a_real_slurm_cluster() {
    start_slurm();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let file = dir.join("cluster_tiny.toml");
    fs::write(&file, EXPERIMENT).unwrap();
    let runs = dir.join("runs");

    // Submitted from the repository: the experiment's default solver, net and data are there.
    let output = Command::new(BIN)
        .args([
            "slurm",
            file.to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
        ])
        .args(["--cpus-per-task", "1", "--time", "10", "--submit"])
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "siamese-tui slurm --submit: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let job = stdout
        .lines()
        .find_map(|l| l.strip_prefix("submitted job array ")?.split(';').next())
        .unwrap_or_else(|| panic!("no job id in:\n{stdout}"))
        .to_string();
    eprintln!("{stdout}");

    let grid = runs.join("cluster_tiny");
    let t0 = Instant::now();
    let results = loop {
        let results: Vec<_> = CELLS.iter().map(|c| ended(&grid.join(c))).collect();
        if results.iter().all(Option::is_some) {
            break results;
        }
        if t0.elapsed() > timeout() {
            let squeue = Command::new("squeue")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            let _ = Command::new("scancel").arg(&job).status();
            panic!(
                "job array {job} not over after {} s (cells: {results:?})\nsqueue:\n{}\n{}",
                timeout().as_secs(),
                String::from_utf8_lossy(&squeue),
                task_logs(&grid)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "job array {job} over in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // Every cell ran as its own array task on the cluster's node.
    for (index, cell) in CELLS.iter().enumerate() {
        let status = CellStatus::read(&grid.join(cell))
            .unwrap_or_else(|| {
                panic!(
                    "{cell}: no status.toml: the task never ran run-cell\n{}",
                    task_logs(&grid)
                )
            })
            .unwrap();
        assert_eq!(status.job, Some(format!("{job}_{index}")), "{cell}");
        assert_eq!(status.host, "localhost", "{cell}");
    }
    let failures: Vec<String> = CELLS
        .iter()
        .zip(&results)
        .filter_map(|(cell, r)| Some(format!("{cell}: {}", r.as_ref()?.as_ref().err()?)))
        .collect();
    assert!(
        failures.is_empty(),
        "cells failed on the cluster:\n{}\n{}",
        failures.join("\n"),
        task_logs(&grid)
    );

    let mut reader = csv::Reader::from_path(grid.join("summary.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let ids: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(ids, CELLS);
    for row in &rows {
        assert_eq!(&row[column("iterations")], "20");
        for metric in ["knn_accuracy", "map_at_r", "verification_accuracy_mean"] {
            let value: f64 = row[column(metric)].parse().unwrap();
            assert!((0.0..=1.0).contains(&value), "{metric} {value}");
        }
    }
    for cell in CELLS {
        for file in ["params.toml", "log.csv", "features.csv", "done.toml"] {
            assert!(grid.join(cell).join(file).is_file(), "{cell}/{file}");
        }
    }
}
