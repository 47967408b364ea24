//! `run-cell` tasks (what each Slurm array task runs) side by side with the scripted trainer,
//! without a cluster: every cell's files, its status.toml and embedding.csv, one summary.

mod support;

use std::path::Path;

use siamese_grid::cell_progress::{CellStatus, RunState, read_embedding};
use siamese_grid::cell_trainer::{CellEvent, Control};
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_grid::run_cell::{CellTask, TaskUpdate, record_failure, run_cell};
use siamese_grid::runner::GridReport;
use support::{ScriptedTrainer, TEST_POINTS};

const TINY: &str = "name = \"tiny\"\niterations = 12\ntest_interval = 4\nsnapshot_interval = 5\n[grid]\nmargin = [1, 2, 4]\n";

fn tiny(dir: &Path) -> (Experiment, Vec<Cell>) {
    let experiment = Experiment::load(&support::experiment_file(dir, "tiny", TINY)).unwrap();
    let cells = Cell::expand(&experiment);
    (experiment, cells)
}

fn summary_cells(grid: &Path) -> Vec<String> {
    csv::Reader::from_path(grid.join("summary.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect()
}

fn status(dir: &Path) -> CellStatus {
    CellStatus::read(dir).expect("status.toml").unwrap()
}

/// Runs `task`, returning its report and every event it reported.
fn run(task: &CellTask<'_>, trainer: &ScriptedTrainer) -> (GridReport, Vec<CellEvent>) {
    let mut events = Vec::new();
    let report = run_cell(task, trainer, &Control::new(), &mut |update| match update {
        TaskUpdate::Event(e) => events.push(e.clone()),
        TaskUpdate::ProgressNotWritten { dir, error } => panic!("{}: {error}", dir.display()),
    })
    .unwrap();
    (report, events)
}

#[test]
fn run_cell_tasks_side_by_side_write_every_file_and_one_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (experiment, cells) = tiny(dir.path());
    let out = dir.path().join("runs");
    let trainer = ScriptedTrainer::default();
    let task = |cell| CellTask {
        experiment: &experiment,
        cells: &cells,
        cell,
        out: &out,
        threads: 1,
    };
    // Three array tasks at once, each a run-cell of its own cell.
    let events: Vec<Vec<CellEvent>> = std::thread::scope(|scope| {
        let tasks: Vec<_> = cells
            .iter()
            .map(|cell| {
                let (task, trainer) = (task(cell), &trainer);
                scope.spawn(move || {
                    let (report, events) = run(&task, trainer);
                    assert_eq!((report.finished, report.failed), (1, 0));
                    events
                })
            })
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let grid = out.join("tiny");
    assert_eq!(
        summary_cells(&grid),
        ["000-margin_1", "001-margin_2", "002-margin_4"]
    );
    for (cell, events) in cells.iter().zip(&events) {
        assert!(
            events.iter().all(|e| e.cell() == cell.index),
            "{}: another cell's events",
            cell.id
        );
        assert!(matches!(events.last(), Some(CellEvent::Finished { .. })));
        let folder = grid.join(&cell.id);
        for file in ["params.toml", "log.csv", "features.csv", "done.toml"] {
            assert!(folder.join(file).is_file(), "{}/{file}", cell.id);
        }
        let status = status(&folder);
        assert_eq!(
            (status.state, status.iter, status.total),
            (RunState::Done, 12, 12)
        );
        let embedding = read_embedding(&folder).unwrap();
        assert_eq!((embedding.iter, embedding.points.len()), (12, TEST_POINTS));
    }
    assert_eq!(
        task(&cells[0]).dir(),
        grid.join("000-margin_1"),
        "a task trains into out/<experiment>/<cell>"
    );

    // A task run again for a finished cell skips it.
    let (report, events) = run(&task(&cells[1]), &trainer);
    assert_eq!((report.skipped, report.finished), (1, 0));
    assert!(matches!(events[..], [CellEvent::Skipped { cell: 1, .. }]));
    assert_eq!(trainer.calls().len(), 3);
}

#[test]
fn a_failing_cell_says_why_in_its_status_and_is_left_out_of_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (experiment, cells) = tiny(dir.path());
    let out = dir.path().join("runs");
    let trainer = ScriptedTrainer {
        fail_cell: Some(2),
        ..Default::default()
    };
    let task = |cell| CellTask {
        experiment: &experiment,
        cells: &cells,
        cell,
        out: &out,
        threads: 1,
    };
    for cell in [&cells[0], &cells[2]] {
        run(&task(cell), &trainer);
    }
    let grid = out.join("tiny");
    let failed = status(&grid.join(&cells[2].id));
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("scripted failure: loss is NaN")
    );
    assert_eq!(failed.iter, 1);
    assert_eq!(summary_cells(&grid), ["000-margin_1"]);

    // A task that cannot start records why before anything runs.
    record_failure(&task(&cells[1]), "the data folder is gone").unwrap();
    let failed = status(&grid.join(&cells[1].id));
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(failed.error.as_deref(), Some("the data folder is gone"));
    assert!(grid.join("grid.toml").is_file());
}
