//! `siamese-tui run-cell`: trains one cell of a grid headless through the grid runner (the
//! same files and summary.csv as a local run) and keeps status.toml and embedding.csv up to
//! date for watchers. This is what each Slurm array task runs.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};

use anyhow::Context;

use crate::cell_progress::{CellStatus, HEARTBEAT, RunState, write_embedding};
use crate::cell_trainer::{CellEvent, CellTrainer, Control};
use crate::experiment::Experiment;
use crate::grid::Cell;
use crate::headless::event_line;
use crate::manifest::GridManifest;
use crate::runner::{GridReport, RunOptions, run_cells};

/// The cell `which` names: its index in the grid (what `$SLURM_ARRAY_TASK_ID` holds) or its id.
pub fn find_cell<'a>(
    cells: &'a [Cell],
    which: &str,
    experiment_file: &Path,
) -> anyhow::Result<&'a Cell> {
    let found = match which.parse::<usize>() {
        Ok(index) => cells.get(index),
        Err(_) => cells.iter().find(|c| c.id == which),
    };
    found.with_context(|| {
        let first = cells.first().map_or("", |c| c.id.as_str());
        format!(
            "{}: no cell `{which}`: expected an index from 0 to {} or a cell id such as {first}",
            experiment_file.display(),
            cells.len().saturating_sub(1)
        )
    })
}

/// Compute threads for a cell: Slurm's `--cpus-per-task` inside a job, else every core.
pub fn default_threads() -> usize {
    std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Trains `cell` (resuming it, or skipping it when finished) into `out/<experiment>/<cell>/`,
/// writing one line per event to `w`, like `--headless`.
#[allow(clippy::too_many_arguments)] // the runner's inputs, plus the one cell and the output
pub fn run_cell(
    experiment: &Experiment,
    cells: &[Cell],
    cell: &Cell,
    out: &Path,
    threads: usize,
    trainer: &dyn CellTrainer,
    control: &Control,
    w: &mut dyn Write,
) -> anyhow::Result<GridReport> {
    let dir = out.join(&experiment.name).join(&cell.id);
    let first = CellStatus::running(0, experiment.iterations);
    writeln!(
        w,
        "{}: cell {} of {} ({}), {} iterations, {threads} thread{} on {}{} → {}",
        experiment.name,
        cell.index,
        cells.len(),
        cell.id,
        experiment.iterations,
        if threads == 1 { "" } else { "s" },
        first.host,
        first
            .job
            .as_deref()
            .map(|j| format!(" (Slurm job {j})"))
            .unwrap_or_default(),
        dir.display()
    )?;
    writeln!(w, "{}", experiment.data.note)?;
    let options = RunOptions {
        out: out.to_path_buf(),
        workers: 1,
        threads,
        fresh: false,
    };
    let progress = Progress {
        dir: &dir,
        status: Mutex::new(None),
    };
    let (tx, rx) = mpsc::channel();
    let (stop_heartbeat, heartbeats) = mpsc::channel::<()>();
    let report = std::thread::scope(|scope| -> anyhow::Result<GridReport> {
        let runner = scope.spawn(|| {
            run_cells(
                experiment,
                cells,
                &[cell.index],
                &options,
                trainer,
                control,
                tx,
            )
        });
        let progress = &progress;
        scope.spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = heartbeats.recv_timeout(HEARTBEAT) {
                progress.beat();
            }
        });
        let mut warned = false;
        for event in rx {
            if let Err(e) = progress.record(&event)
                && !warned
            {
                writeln!(
                    w,
                    "warning: {}: progress files not written: {e}",
                    dir.display()
                )?;
                warned = true;
            }
            if let Some(line) = event_line(cells, &event) {
                writeln!(w, "{line}")?;
                w.flush()?;
            }
        }
        drop(stop_heartbeat);
        runner
            .join()
            .map_err(|_| anyhow::anyhow!("the grid runner panicked"))?
            .context("grid runner")
    });
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            let error = format!("{e:#}");
            let _ = record_failure(experiment, cells, cell, out, &error);
            return Err(e);
        }
    };
    writeln!(w, "{}", crate::end_line(&report))?;
    Ok(report)
}

/// Marks `cell` failed before it could start (no training engine, bad data): the grid's
/// grid.toml and the cell's status.toml say so, for watchers.
pub fn record_failure(
    experiment: &Experiment,
    cells: &[Cell],
    cell: &Cell,
    out: &Path,
    error: &str,
) -> std::io::Result<()> {
    let grid_dir = out.join(&experiment.name);
    let dir = grid_dir.join(&cell.id);
    std::fs::create_dir_all(&dir)?;
    GridManifest::new(experiment, cells).write(&grid_dir)?;
    let mut status = match CellStatus::read(&dir) {
        Some(Ok(status)) if status.state == RunState::Running => status,
        _ => CellStatus::running(0, experiment.iterations),
    };
    status.state = RunState::Failed;
    status.error = Some(error.to_string());
    status.write(&dir)
}

/// The status of the cell being run, shared by the event loop and the heartbeat thread.
struct Progress<'a> {
    dir: &'a Path,
    status: Mutex<Option<CellStatus>>,
}

impl Progress<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CellStatus>> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites status.toml while running (a heartbeat); a failed write waits for the next.
    fn beat(&self) {
        if let Some(status) = self.lock().as_mut()
            && status.state == RunState::Running
        {
            let _ = status.write(self.dir);
        }
    }

    /// Updates the progress files for `event`.
    fn record(&self, event: &CellEvent) -> std::io::Result<()> {
        let mut guard = self.lock();
        let state = match event {
            CellEvent::Started {
                total_iters,
                resumed_from,
                ..
            } => {
                *guard = Some(CellStatus::running(resumed_from.unwrap_or(0), *total_iters));
                RunState::Running
            }
            CellEvent::Train { iter, .. } => {
                if let Some(status) = guard.as_mut() {
                    status.iter = *iter;
                }
                return Ok(());
            }
            CellEvent::Embedding { iter, points, .. } => {
                return write_embedding(self.dir, *iter, points);
            }
            CellEvent::Snapshot { .. } | CellEvent::TempFilesRemoved { .. } => return Ok(()),
            CellEvent::Test { .. } => RunState::Running,
            CellEvent::Finished { summary, .. } | CellEvent::Skipped { summary, .. } => {
                let status =
                    guard.get_or_insert_with(|| CellStatus::running(0, summary.iterations));
                status.iter = summary.iterations;
                RunState::Done
            }
            CellEvent::Failed { error, .. } => {
                guard.get_or_insert_with(|| CellStatus::running(0, 0)).error = Some(error.clone());
                RunState::Failed
            }
            CellEvent::Stopped { .. } => RunState::Stopped,
        };
        match guard.as_mut() {
            Some(status) => {
                status.state = state;
                status.write(self.dir)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells() -> Vec<Cell> {
        ["000-margin_1", "001-margin_2"]
            .iter()
            .enumerate()
            .map(|(index, id)| Cell {
                index,
                id: id.to_string(),
                values: vec![("margin", (index + 1).to_string())],
                params: Default::default(),
            })
            .collect()
    }

    #[test]
    fn a_cell_is_found_by_index_or_id() {
        let cells = cells();
        let file = Path::new("exp.toml");
        assert_eq!(find_cell(&cells, "1", file).unwrap().id, "001-margin_2");
        assert_eq!(find_cell(&cells, "000-margin_1", file).unwrap().index, 0);
        let error = find_cell(&cells, "2", file).unwrap_err().to_string();
        assert_eq!(
            error,
            "exp.toml: no cell `2`: expected an index from 0 to 1 or a cell id such as 000-margin_1"
        );
        assert!(find_cell(&cells, "margin_1", file).is_err());
    }
}
