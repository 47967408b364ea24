//! `--headless` and `run-cell` lines with the scripted test trainer: one line per event a
//! reader follows (start, tests, end), framed by a first and a closing line.

#[path = "../../grid/tests/support/mod.rs"]
mod support;

use std::path::Path;

use siamese_grid::cell_trainer::Control;
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_grid::run_cell::CellTask;
use siamese_grid::runner::RunOptions;
use siamese_tui::headless::{run_cell_headless, run_headless};
use support::ScriptedTrainer;

const TINY: &str = "name = \"tiny\"\niterations = 12\ntest_interval = 4\nsnapshot_interval = 5\n[grid]\nmargin = [1, 2]\n";

fn tiny(dir: &Path) -> (Experiment, Vec<Cell>) {
    let experiment = Experiment::load(&support::experiment_file(dir, "tiny", TINY)).unwrap();
    let cells = Cell::expand(&experiment);
    (experiment, cells)
}

fn grid_lines(dir: &Path, trainer: &ScriptedTrainer) -> Vec<String> {
    let (experiment, cells) = tiny(dir);
    let options = RunOptions {
        out: dir.join("runs"),
        workers: 1,
        threads: 1,
        fresh: false,
    };
    let mut out = Vec::new();
    run_headless(
        &experiment,
        &cells,
        &options,
        trainer,
        &Control::new(),
        &mut out,
    )
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_headless_grid_prints_a_line_per_event_a_reader_follows() {
    let dir = tempfile::tempdir().unwrap();
    let lines = grid_lines(dir.path(), &ScriptedTrainer::default());
    // Header, data note, 2 × (start, 3 tests, finish), the best cell, closing line.
    assert_eq!(lines.len(), 2 + 2 * 5 + 2, "{lines:#?}");
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
        lines[6].starts_with("[000-margin_1] finished in ")
            && lines[6]
                .ends_with("P@1 1.0000, MAP@R 1.0000, verification accuracy 1.0000 ± 0.0000"),
        "{}",
        lines[6]
    );
    // Both cells are perfect: the first of equals is the best.
    assert_eq!(lines[12], "best by MAP@R: margin=1 (1.000 over 1 cell)");
    assert!(lines[13].starts_with(
        "done: 2 finished, 0 skipped (finished earlier), 0 failed, 0 stopped; summary in "
    ));

    let again = grid_lines(dir.path(), &ScriptedTrainer::default());
    assert!(
        again[2].starts_with("[000-margin_1] already finished (P@1 1.0000, MAP@R 1.0000"),
        "{}",
        again[2]
    );
}

#[test]
fn failures_and_stops_say_what_happens_next() {
    let dir = tempfile::tempdir().unwrap();
    let failing = ScriptedTrainer {
        fail_cell: Some(0),
        panic_cell: Some(1),
        ..Default::default()
    };
    let lines = grid_lines(dir.path(), &failing);
    assert_eq!(
        lines[3],
        "[000-margin_1] FAILED: scripted failure: loss is NaN (retried on the next run)"
    );
    assert_eq!(
        lines[5],
        "[001-margin_2] FAILED: trainer panicked: scripted panic in cell 1 (retried on the next run)"
    );

    let dir = tempfile::tempdir().unwrap();
    let killer = ScriptedTrainer {
        die_at: Some((1, 7)),
        ..Default::default()
    };
    let lines = grid_lines(dir.path(), &killer);
    assert_eq!(
        lines[9],
        "[001-margin_2] stopped; resumes from its last snapshot on the next run"
    );
    let lines = grid_lines(dir.path(), &ScriptedTrainer::default());
    assert_eq!(lines[3], "[001-margin_2] resumed at iteration 5 of 12");
}

#[test]
fn a_run_cell_task_names_its_cell_host_and_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (experiment, cells) = tiny(dir.path());
    let out = dir.path().join("runs");
    let task = CellTask {
        experiment: &experiment,
        cells: &cells,
        cell: &cells[0],
        out: &out,
        threads: 1,
    };
    let mut lines = Vec::new();
    let report = run_cell_headless(
        &task,
        &ScriptedTrainer::default(),
        &Control::new(),
        &mut lines,
    )
    .unwrap();
    assert_eq!(report.finished, 1);
    let text = String::from_utf8(lines).unwrap();
    assert!(
        text.starts_with("tiny: cell 0 of 2 (000-margin_1), 12 iterations, 1 thread on "),
        "{text}"
    );
    assert!(
        text.contains(&format!(" → {}\n", out.join("tiny/000-margin_1").display())),
        "{text}"
    );
    assert!(
        text.contains("[000-margin_1] test at iteration 4: loss "),
        "{text}"
    );
    assert!(text.contains("[000-margin_1] finished in "), "{text}");
    assert!(
        text.trim_end().ends_with(&format!(
            "summary in {}",
            out.join("tiny/summary.csv").display()
        )),
        "{text}"
    );
}

/// A scheduled grid: the pruned cell's line gives its iteration and the reason, and the
/// closing line counts it.
#[test]
fn pruned_cells_have_their_line_and_are_counted_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"tiny\"\niterations = 12\ntest_interval = 2\nmetric = \"test_loss\"\n\
                [schedule]\nkind = \"asha\"\nmin_iterations = 2\neta = 2\n[grid]\nmargin = [1, 3, 2]\n";
    let experiment = Experiment::load(&support::experiment_file(dir.path(), "tiny", body)).unwrap();
    let cells = Cell::expand(&experiment);
    let options = RunOptions {
        out: dir.path().join("runs"),
        workers: 1,
        threads: 1,
        fresh: false,
    };
    let mut out = Vec::new();
    let trainer = ScriptedTrainer::default();
    run_headless(
        &experiment,
        &cells,
        &options,
        &trainer,
        &Control::new(),
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("[001-margin_3] pruned at iteration 2 (asha: test_loss 1.1"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.ends_with("ranks 2 of 2 at rung 2, the top 1 go on)"),
        "{line}"
    );
    assert!(
        text.contains("[002-margin_2] pruned at iteration 2"),
        "{text}"
    );
    assert!(text.contains(", 2 pruned; summary in "), "{text}");
}
