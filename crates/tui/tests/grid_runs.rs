//! Headless grid runs end to end with the scripted test trainer: the files every cell and the
//! grid write, skipping finished cells, resuming a killed run, `--fresh`, and failures.

mod support;

use std::fs;
use std::path::Path;

use siamese_tui::cell_folder::CellFolder;
use siamese_tui::cell_trainer::Control;
use siamese_tui::experiment::Experiment;
use siamese_tui::grid::Cell;
use siamese_tui::headless::run_headless;
use siamese_tui::runner::{GridReport, RunOptions};
use support::{ScriptedTrainer, TEST_POINTS};

const TINY: &str = "name = \"tiny\"\niterations = 12\ntest_interval = 4\nsnapshot_interval = 5\n[grid]\nmargin = [1, 2]\n";

struct Run {
    report: GridReport,
    lines: Vec<String>,
}

fn run(dir: &Path, trainer: &ScriptedTrainer, fresh: bool) -> Run {
    let file = support::experiment_file(dir, "tiny", TINY);
    let experiment = Experiment::load(&file).unwrap();
    let cells = Cell::expand(&experiment);
    let options = RunOptions {
        out: dir.join("runs"),
        workers: 1,
        threads: 1,
        fresh,
    };
    let mut out = Vec::new();
    let report = run_headless(
        &experiment,
        &cells,
        &options,
        trainer,
        &Control::new(),
        &mut out,
    )
    .unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    Run { report, lines }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn summary_rows(dir: &Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(dir.join("runs/tiny/summary.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "cell",
            "margin",
            "seed",
            "iterations",
            "train_loss",
            "test_loss",
            "knn_accuracy",
            "pair_accuracy",
            "pair_threshold",
            "wall_seconds"
        ]
    );
    reader.records().map(Result::unwrap).collect()
}

/// `(phase, iteration)` of every log.csv row.
fn log_rows(cell_dir: &Path) -> Vec<(String, u32)> {
    let mut reader = csv::Reader::from_path(cell_dir.join("log.csv")).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["iter", "phase", "lr", "loss", "seconds"]
    );
    reader
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r[1].to_string(), r[0].parse().unwrap()))
        .collect()
}

fn expected_log() -> Vec<(String, u32)> {
    let mut rows = Vec::new();
    for iter in 1..=12 {
        rows.push(("train".to_string(), iter));
        if iter % 4 == 0 {
            rows.push(("test".to_string(), iter));
        }
    }
    rows
}

#[test]
fn headless_run_writes_every_cell_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = ScriptedTrainer::default();
    let Run { report, lines } = run(dir.path(), &trainer, false);
    assert_eq!(
        (
            report.finished,
            report.skipped,
            report.failed,
            report.stopped
        ),
        (2, 0, 0, 0)
    );

    // One line per event: header, data note, 2 × (start, 3 tests, finish), closing line.
    assert_eq!(lines.len(), 2 + 2 * 5 + 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("tiny: 2 cells of 12 iterations, 1 worker × 1 thread → "),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("data: "), "{}", lines[1]);
    assert_eq!(lines[2], "[000-margin_1] started: 12 iterations");
    assert_eq!(
        lines[3],
        "[000-margin_1] test at iteration 4: loss 0.306656, loss 0.306656"
    );
    assert!(
        lines[6].starts_with("[000-margin_1] finished in "),
        "{}",
        lines[6]
    );
    assert!(
        lines[6].ends_with("k-NN accuracy 1.0000, pair accuracy 1.0000"),
        "{}",
        lines[6]
    );
    assert!(lines[12].starts_with(
        "done: 2 finished, 0 skipped (finished earlier), 0 failed, 0 stopped; summary in "
    ));

    let rows = summary_rows(dir.path());
    assert_eq!(rows.len(), 2);
    for (row, (id, margin)) in rows
        .iter()
        .zip([("000-margin_1", "1"), ("001-margin_2", "2")])
    {
        assert_eq!(
            (&row[0], &row[1], &row[2], &row[3]),
            (id, margin, "1", "12")
        );
        let num = |i: usize| row[i].parse::<f64>().unwrap();
        // Mean of the 12 scripted train losses: margin × 0.5 / (1 + 0.2 i) (+ seed term 1e-3).
        let m: f64 = margin.parse().unwrap();
        let mean = (1..=12)
            .map(|i| (m * 0.5 / (1.0 + 0.2 * f64::from(i))) as f32 as f64 + 1e-3)
            .sum::<f64>()
            / 12.0;
        assert!(
            (num(4) - mean).abs() < 1e-5,
            "train loss {} vs {mean}",
            num(4)
        );
        assert!(
            (num(5) - (m * 0.5 / 3.4 + 1e-3) * 1.1).abs() < 1e-5,
            "test loss {}",
            num(5)
        );
        assert_eq!(
            (num(6), num(7)),
            (1.0, 1.0),
            "separated clusters: perfect k-NN and pairs"
        );
        assert!(num(8) > 0.0 && num(9) >= 0.0);

        let cell = dir.path().join("runs/tiny").join(id);
        let params: toml::Table = toml::from_str(&read(cell.join("params.toml"))).unwrap();
        assert_eq!(params["cell"].as_str(), Some(id));
        assert_eq!(params["iterations"].as_integer(), Some(12));
        assert_eq!(params["params"]["margin"].as_float(), Some(m));
        assert_eq!(log_rows(&cell), expected_log());
        assert_eq!(read(cell.join("snap_iter_12.caffemodel")), "final weights");
        let features = read(cell.join("features.csv"));
        assert_eq!(features.lines().next(), Some("digit,f0,f1"));
        assert_eq!(features.lines().count(), 1 + TEST_POINTS);
        assert_eq!(
            CellFolder::new(cell.clone()).read_features(),
            Some(support::clusters(TEST_POINTS, 0.5))
        );
        let done: toml::Table = toml::from_str(&read(cell.join("done.toml"))).unwrap();
        assert_eq!(done["knn_accuracy"].as_float(), Some(1.0));
        assert!(cell.join("snap_iter_10.solverstate").is_file());
    }
    assert_eq!(
        trainer.calls(),
        [
            ("000-margin_1".to_string(), None),
            ("001-margin_2".to_string(), None)
        ]
    );
}

#[test]
fn a_killed_run_resumes_from_its_snapshot_and_skips_finished_cells() {
    let dir = tempfile::tempdir().unwrap();
    // First run: cell 0 finishes, cell 1 dies at iteration 7 (last snapshot at 5).
    let killer = ScriptedTrainer {
        die_at: Some((1, 7)),
        ..Default::default()
    };
    let first = run(dir.path(), &killer, false);
    assert_eq!((first.report.finished, first.report.stopped), (1, 1));
    assert_eq!(
        first.lines[9],
        "[001-margin_2] stopped; resumes from its last snapshot on the next run"
    );
    let cell1 = dir.path().join("runs/tiny/001-margin_2");
    assert!(!cell1.join("done.toml").exists());
    assert_eq!(
        summary_rows(dir.path()).len(),
        1,
        "only the finished cell is in the summary"
    );
    assert_eq!(log_rows(&cell1).last(), Some(&("train".to_string(), 7)));

    // Second run: cell 0 is skipped, cell 1 resumes at 5 and its log drops rows 6 and 7.
    let resumer = ScriptedTrainer::default();
    let second = run(dir.path(), &resumer, false);
    assert_eq!(resumer.calls(), [("001-margin_2".to_string(), Some(5))]);
    assert_eq!((second.report.finished, second.report.skipped), (1, 1));
    assert!(
        second.lines[2].starts_with("[000-margin_1] already finished (k-NN accuracy 1.0000"),
        "{}",
        second.lines[2]
    );
    assert_eq!(
        second.lines[3],
        "[001-margin_2] resumed at iteration 5 of 12"
    );
    assert_eq!(
        log_rows(&cell1),
        expected_log(),
        "no iteration twice, none missing"
    );
    assert_eq!(summary_rows(dir.path()).len(), 2);

    // Third run: everything is finished, nothing trains.
    let idle = ScriptedTrainer::default();
    assert_eq!(run(dir.path(), &idle, false).report.skipped, 2);
    assert!(idle.calls().is_empty());

    // --fresh: earlier results are deleted and every cell runs from scratch.
    fs::write(cell1.join("stale.txt"), "from the earlier run").unwrap();
    let fresh = ScriptedTrainer::default();
    let again = run(dir.path(), &fresh, true);
    assert_eq!(again.report.finished, 2);
    assert_eq!(
        fresh.calls(),
        [
            ("000-margin_1".to_string(), None),
            ("001-margin_2".to_string(), None)
        ]
    );
    assert!(!cell1.join("stale.txt").exists());
    assert_eq!(log_rows(&cell1), expected_log());
}

#[test]
fn failing_and_panicking_cells_are_reported_and_retried_later() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = ScriptedTrainer {
        fail_cell: Some(0),
        panic_cell: Some(1),
        ..Default::default()
    };
    let Run { report, lines } = run(dir.path(), &trainer, false);
    assert_eq!((report.finished, report.failed), (0, 2));
    assert_eq!(
        lines[3],
        "[000-margin_1] FAILED: scripted failure: loss is NaN (retried on the next run)"
    );
    assert_eq!(
        lines[5],
        "[001-margin_2] FAILED: trainer panicked: scripted panic in cell 1 (retried on the next run)"
    );
    assert!(summary_rows(dir.path()).is_empty());

    let retry = ScriptedTrainer::default();
    assert_eq!(run(dir.path(), &retry, false).report.finished, 2);
    assert_eq!(retry.calls().len(), 2);
}
