//! siamese-tui: experiment grids (TOML) run on worker threads through a `CellTrainer`,
//! shown live in a ratatui screen or as plain lines with `--headless`.

pub mod cell_folder;
pub mod cell_progress;
pub mod cell_trainer;
pub mod dashboard;
pub mod experiment;
pub mod grid;
pub mod headless;
pub mod manifest;
pub mod overrides;
pub mod pair_dbs;
pub mod run_cell;
pub mod runner;
pub mod scatter;
pub mod screen;
pub mod slurm;
pub mod summary;
pub mod terminal;
pub mod train;
pub mod watch;

use experiment::Experiment;
use grid::Cell;
use runner::{GridReport, RunOptions};

/// The first line of a run: what runs, where, and on how many workers.
pub fn start_line(experiment: &Experiment, cells: &[Cell], options: &RunOptions) -> String {
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "{}: {} of {} iterations, {} × {} → {}",
        experiment.name,
        plural(cells.len(), "cell"),
        experiment.iterations,
        plural(options.workers, "worker"),
        plural(options.threads, "thread"),
        options.out.join(&experiment.name).display()
    )
}

/// The last line of a run: what happened and where the summary is.
pub fn end_line(report: &GridReport) -> String {
    format!(
        "done: {} finished, {} skipped (finished earlier), {} failed, {} stopped; summary in {}",
        report.finished,
        report.skipped,
        report.failed,
        report.stopped,
        report.summary.display()
    )
}
