//! `run-cell`: trains one cell of a grid through the grid runner (the same files and
//! summary.csv as a local run) and keeps status.toml and embedding.csv up to date for
//! watchers. This is what each Slurm array task runs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};

use crate::cell_progress::{CellStatus, HEARTBEAT, RunState, write_embedding};
use crate::cell_trainer::{CellEvent, CellTrainer, Control};
use crate::cells::Cell;
use crate::experiment::Experiment;
use crate::manifest::GridManifest;
use crate::runner::{GridReport, RunError, RunOptions, panic_message, run_cells};

/// A cell named on the command line that the grid does not have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{}: no cell `{which}`: expected an index from 0 to {last} or a cell id such as {first}",
    .experiment_file.display()
)]
pub struct NoSuchCell {
    pub experiment_file: PathBuf,
    pub which: String,
    pub last: usize,
    pub first: String,
}

/// The cell `which` names: its index in the grid (what `$SLURM_ARRAY_TASK_ID` holds) or its id.
pub fn find_cell<'a>(
    cells: &'a [Cell],
    which: &str,
    experiment_file: &Path,
) -> Result<&'a Cell, NoSuchCell> {
    let found = match which.parse::<usize>() {
        Ok(index) => cells.get(index),
        Err(_) => cells.iter().find(|c| c.id == which),
    };
    found.ok_or_else(|| NoSuchCell {
        experiment_file: experiment_file.to_path_buf(),
        which: which.to_string(),
        last: cells.len().saturating_sub(1),
        first: cells.first().map_or("", |c| c.id.as_str()).to_string(),
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

/// One cell of a grid, run on its own (a Slurm array task).
#[derive(Debug, Clone, Copy)]
pub struct CellTask<'a> {
    pub experiment: &'a Experiment,
    /// The whole grid (summary.csv and grid.toml list every cell).
    pub cells: &'a [Cell],
    pub cell: &'a Cell,
    /// The runs folder: the cell trains into `out/<experiment>/<cell>/`.
    pub out: &'a Path,
    /// Compute threads.
    pub threads: usize,
}

impl CellTask<'_> {
    /// The cell's folder.
    pub fn dir(&self) -> PathBuf {
        self.out.join(&self.experiment.name).join(&self.cell.id)
    }
}

/// What a task tells its front end while it runs.
#[derive(Debug)]
pub enum TaskUpdate<'a> {
    Event(&'a CellEvent),
    /// The progress files (status.toml, embedding.csv) could not be written; said once.
    ProgressNotWritten {
        dir: &'a Path,
        error: &'a io::Error,
    },
}

/// Trains `task.cell` (resuming it, or skipping it when finished), reporting each event to
/// `on_update`. A runner error is recorded in the cell's status.toml before it is returned.
pub fn run_cell(
    task: &CellTask<'_>,
    trainer: &dyn CellTrainer,
    control: &Control,
    on_update: &mut dyn FnMut(TaskUpdate<'_>),
) -> Result<GridReport, RunError> {
    let dir = task.dir();
    let options = RunOptions {
        out: task.out.to_path_buf(),
        workers: 1,
        threads: task.threads,
        fresh: false,
    };
    let progress = Progress {
        dir: &dir,
        status: Mutex::new(None),
    };
    let (tx, rx) = mpsc::channel();
    let (stop_heartbeat, heartbeats) = mpsc::channel::<()>();
    let report = std::thread::scope(|scope| {
        let runner = scope.spawn(|| {
            let selected = [task.cell.index];
            run_cells(
                task.experiment,
                task.cells,
                &selected,
                &options,
                trainer,
                control,
                tx,
            )
        });
        let progress = &progress;
        scope.spawn(move || progress.beat_until(heartbeats));
        progress.follow(rx, on_update);
        drop(stop_heartbeat);
        runner.join().unwrap_or_else(|panic| {
            Err(RunError::Panicked {
                message: panic_message(&panic),
            })
        })
    });
    if let Err(e) = &report {
        let _ = record_failure(task, &e.to_string());
    }
    report
}

/// Marks the task's cell failed (a runner error, or before it could start): the grid's
/// grid.toml and the cell's status.toml say so, for watchers.
pub fn record_failure(task: &CellTask<'_>, error: &str) -> io::Result<()> {
    let grid_dir = task.out.join(&task.experiment.name);
    let dir = task.dir();
    std::fs::create_dir_all(&dir)?;
    GridManifest::new(task.experiment, task.cells).write(&grid_dir)?;
    let mut status = match CellStatus::read(&dir) {
        Some(Ok(status)) if status.state == RunState::Running => status,
        _ => CellStatus::running(0, task.experiment.iterations),
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

    /// Rewrites status.toml every [`HEARTBEAT`] while running, until `stop` is dropped; a
    /// failed write waits for the next.
    fn beat_until(&self, stop: mpsc::Receiver<()>) {
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(HEARTBEAT) {
            if let Some(status) = self.lock().as_mut()
                && status.state == RunState::Running
            {
                let _ = status.write(self.dir);
            }
        }
    }

    /// Records every event of the run in the progress files and hands it on, until the
    /// runner is done; the first failed write is handed on too.
    fn follow(&self, events: mpsc::Receiver<CellEvent>, on_update: &mut dyn FnMut(TaskUpdate<'_>)) {
        let mut warned = false;
        for event in events {
            if let Err(error) = self.record(&event)
                && !warned
            {
                on_update(TaskUpdate::ProgressNotWritten {
                    dir: self.dir,
                    error: &error,
                });
                warned = true;
            }
            on_update(TaskUpdate::Event(&event));
        }
    }

    /// Updates the progress files for `event`.
    fn record(&self, event: &CellEvent) -> io::Result<()> {
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
            CellEvent::Embedding { scatter, .. } => {
                return write_embedding(self.dir, scatter);
            }
            CellEvent::Snapshot { .. }
            | CellEvent::TempFilesRemoved { .. }
            | CellEvent::ClaimedElsewhere { .. } => return Ok(()),
            CellEvent::Test { .. } => RunState::Running,
            CellEvent::Finished { summary, .. } | CellEvent::Skipped { summary, .. } => {
                let status =
                    guard.get_or_insert_with(|| CellStatus::running(0, summary.iterations));
                status.iter = summary.iterations;
                RunState::Done
            }
            CellEvent::Pruned { at, .. } => {
                guard
                    .get_or_insert_with(|| CellStatus::running(0, *at))
                    .iter = *at;
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
