//! The grid runner: runs an experiment's cells on N worker threads through a `CellTrainer`,
//! skips finished cells, resumes interrupted ones, and keeps `summary.csv` up to date.

use std::fs;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

use siamese_solver::metrics;

use crate::cell_folder::{CellFolder, LogRow};
use crate::cell_trainer::{
    CellEvent, CellJob, CellOutcome, CellSummary, CellTrainer, Control, Flow,
};
use crate::experiment::Experiment;
use crate::grid::Cell;
pub use crate::summary::SUMMARY_FILE;
/// Shared pair LevelDBs inside `runs/<experiment>/` (kept by `--fresh`).
pub const PAIRS_DIR: &str = "pairs";
/// How many final training losses the summary's train loss averages.
const TRAIN_LOSS_WINDOW: usize = 50;

/// How to run a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// The runs folder; the experiment writes `<out>/<name>/`.
    pub out: PathBuf,
    /// Cells trained at once.
    pub workers: usize,
    /// Compute threads per cell.
    pub threads: usize,
    /// Delete earlier results (not the pair LevelDBs) and start over.
    pub fresh: bool,
}

impl RunOptions {
    /// Workers and threads that fit `cores` for `cells` cells: as many workers as cores (at
    /// most one per cell), the cores shared among them.
    pub fn fitting(out: PathBuf, cells: usize, cores: usize, fresh: bool) -> RunOptions {
        let workers = cores.min(cells).max(1);
        RunOptions {
            out,
            workers,
            threads: (cores / workers).max(1),
            fresh,
        }
    }
}

/// How a grid run ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GridReport {
    pub finished: usize,
    pub skipped: usize,
    pub failed: usize,
    pub stopped: usize,
    pub summary: PathBuf,
}

/// A runner error that stops the whole grid (cell failures do not).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// (The cause is in the message, not a separate `source()`, so printing the chain does
    /// not repeat it.)
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error(transparent)]
    File(#[from] siamese_files::FileError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        error: source,
    }
}

/// Runs every unfinished cell of `experiment`; events go to `events` (dropped at the end, so
/// a receiver sees the channel close when the grid is done).
pub fn run_grid(
    experiment: &Experiment,
    cells: &[Cell],
    options: &RunOptions,
    trainer: &dyn CellTrainer,
    control: &Control,
    events: Sender<CellEvent>,
) -> Result<GridReport, RunError> {
    let all: Vec<usize> = cells.iter().map(|c| c.index).collect();
    run_cells(experiment, cells, &all, options, trainer, control, events)
}

/// Like [`run_grid`], but only for the cells whose index is in `selected` (`run-cell` runs
/// one). summary.csv is rebuilt from every finished cell's folder, so it also lists cells
/// that other processes (Slurm array tasks) finished.
pub fn run_cells(
    experiment: &Experiment,
    cells: &[Cell],
    selected: &[usize],
    options: &RunOptions,
    trainer: &dyn CellTrainer,
    control: &Control,
    events: Sender<CellEvent>,
) -> Result<GridReport, RunError> {
    let grid_dir = options.out.join(&experiment.name);
    if options.fresh && grid_dir.exists() {
        clear_results(&grid_dir)?;
    }
    let pairs_dir = grid_dir.join(PAIRS_DIR);
    fs::create_dir_all(&pairs_dir).map_err(io_at(&pairs_dir))?;
    crate::manifest::GridManifest::new(experiment, cells)
        .write(&grid_dir)
        .map_err(io_at(&grid_dir.join(crate::manifest::MANIFEST_FILE)))?;

    let summary_path = grid_dir.join(SUMMARY_FILE);
    let shared = Shared {
        experiment,
        cells,
        trainer,
        control,
        pairs_dir,
        threads: options.threads,
        grid_dir: grid_dir.clone(),
        report: Mutex::new(GridReport {
            summary: summary_path,
            ..Default::default()
        }),
    };
    let mut queue = Vec::new();
    for cell in cells.iter().filter(|c| selected.contains(&c.index)) {
        let folder = CellFolder::new(grid_dir.join(&cell.id));
        match folder
            .done()
            .filter(|s| s.iterations == experiment.iterations)
        {
            Some(summary) => {
                shared.lock_report().skipped += 1;
                let _ = events.send(CellEvent::Skipped {
                    cell: cell.index,
                    summary,
                });
            }
            None => queue.push((cell, folder)),
        }
    }
    shared.write_summary()?;

    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<RunError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for w in 0..options.workers.max(1) {
            let events = events.clone();
            let (shared, queue, next, first_error) = (&shared, &queue, &next, &first_error);
            std::thread::Builder::new()
                .name(format!("siamese-worker-{w}"))
                .spawn_scoped(scope, move || {
                    while control.checkpoint() == Flow::Continue {
                        let Some((cell, folder)) = queue.get(next.fetch_add(1, Ordering::SeqCst))
                        else {
                            break;
                        };
                        if let Err(e) = shared.run_cell(cell, folder, &events) {
                            first_error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                            control.request_stop();
                        }
                    }
                })
                .expect("spawning a worker thread");
        }
    });
    drop(events);
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let report = shared
        .report
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok(report)
}

/// Removes everything in `grid_dir` but the pair LevelDBs.
fn clear_results(grid_dir: &Path) -> Result<(), RunError> {
    for entry in fs::read_dir(grid_dir).map_err(io_at(grid_dir))? {
        let entry = entry.map_err(io_at(grid_dir))?;
        let path = entry.path();
        if entry.file_name() == PAIRS_DIR {
            continue;
        }
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_at(&path))?;
    }
    Ok(())
}

struct Shared<'a> {
    experiment: &'a Experiment,
    cells: &'a [Cell],
    trainer: &'a dyn CellTrainer,
    control: &'a Control,
    pairs_dir: PathBuf,
    threads: usize,
    grid_dir: PathBuf,
    report: Mutex<GridReport>,
}

impl Shared<'_> {
    fn lock_report(&self) -> std::sync::MutexGuard<'_, GridReport> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Trains one cell and writes its files; an `Err` is a runner failure (disk), while a
    /// trainer failure is reported as `Failed` and the grid goes on.
    fn run_cell(
        &self,
        cell: &Cell,
        folder: &CellFolder,
        events: &Sender<CellEvent>,
    ) -> Result<(), RunError> {
        let exp = self.experiment;
        fs::create_dir_all(&folder.dir).map_err(io_at(&folder.dir))?;
        folder.clear_done().map_err(io_at(&folder.dir))?;
        let removed = folder.remove_stale_temp_files()?;
        if !removed.is_empty() {
            let _ = events.send(CellEvent::TempFilesRemoved {
                cell: cell.index,
                paths: removed,
            });
        }
        folder.write_params(exp, cell).map_err(io_at(&folder.dir))?;
        let resume = folder.latest_snapshot(exp.iterations);
        let kept = folder.read_log(resume.as_ref().map_or(0, |r| r.iter));
        let kept = if resume.is_some() { kept } else { Vec::new() };
        let log_path = folder.dir.join(crate::cell_folder::LOG_FILE);
        let log = Mutex::new(folder.start_log(&kept).map_err(io_at(&log_path))?);
        let log_error: Mutex<Option<io::Error>> = Mutex::new(None);
        let rows = Mutex::new(kept);
        let seconds_before = rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .map_or(0.0, |r| r.seconds);
        let job = CellJob {
            cell: cell.clone(),
            dir: folder.dir.clone(),
            solver: exp.solver.clone(),
            net: exp.net.clone(),
            data: exp.data.dir.clone(),
            pairs_dir: self.pairs_dir.clone(),
            iterations: exp.iterations,
            test_interval: exp.test_interval,
            snapshot_interval: exp.snapshot_interval,
            resume: resume.clone(),
            threads: self.threads,
        };
        let _ = events.send(CellEvent::Started {
            cell: cell.index,
            total_iters: exp.iterations,
            resumed_from: resume.as_ref().map(|r| r.iter),
        });
        let start = Instant::now();
        let on_event = |event: CellEvent| {
            let seconds = seconds_before + start.elapsed().as_secs_f64();
            let row = match &event {
                CellEvent::Train { iter, lr, loss, .. } => Some(LogRow {
                    iter: *iter,
                    phase: "train".into(),
                    lr: Some(*lr),
                    loss: *loss,
                    seconds,
                }),
                CellEvent::Test { iter, loss, .. } => Some(LogRow {
                    iter: *iter,
                    phase: "test".into(),
                    lr: None,
                    loss: *loss,
                    seconds,
                }),
                _ => None,
            };
            if let Some(row) = row {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                let written = log.serialize(&row).and_then(|()| Ok(log.flush()?));
                if let Err(e) = written {
                    log_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e.into());
                }
                rows.lock().unwrap_or_else(|e| e.into_inner()).push(row);
            }
            let _ = events.send(event);
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.trainer.run(&job, &on_event, self.control)
        }))
        .unwrap_or_else(|panic| Err(format!("trainer panicked: {}", panic_message(&panic))));
        drop(log);
        if let Some(e) = log_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(RunError::Io {
                path: log_path,
                error: e,
            });
        }
        let wall = seconds_before + start.elapsed().as_secs_f64();
        let rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(outcome) => match self.finish_cell(folder, &outcome, &rows, wall) {
                Ok(summary) => {
                    self.lock_report().finished += 1;
                    let _ = events.send(CellEvent::Finished {
                        cell: cell.index,
                        summary,
                    });
                    Ok(())
                }
                Err(error) => {
                    self.lock_report().failed += 1;
                    let _ = events.send(CellEvent::Failed {
                        cell: cell.index,
                        error,
                    });
                    Ok(())
                }
            },
            Err(_) if self.control.stop_requested() => {
                self.lock_report().stopped += 1;
                let _ = events.send(CellEvent::Stopped { cell: cell.index });
                Ok(())
            }
            Err(error) => {
                self.lock_report().failed += 1;
                let _ = events.send(CellEvent::Failed {
                    cell: cell.index,
                    error,
                });
                Ok(())
            }
        }
    }

    /// Checks the outcome, computes the metrics, writes features.csv, done.toml and the
    /// summary; a problem with the outcome is the cell's failure (returned as text).
    fn finish_cell(
        &self,
        folder: &CellFolder,
        outcome: &CellOutcome,
        rows: &[LogRow],
        wall: f64,
    ) -> Result<CellSummary, String> {
        if !outcome.model.is_file() {
            return Err(format!(
                "the trainer reported model {} but it does not exist",
                outcome.model.display()
            ));
        }
        let summary = summarize(rows, outcome, self.experiment, wall);
        folder
            .write_features(&outcome.test_features)
            .map_err(|e| format!("{}: {e}", folder.dir.display()))?;
        folder
            .write_done(&summary)
            .map_err(|e| format!("{}: {e}", folder.dir.display()))?;
        self.write_summary().map_err(|e| e.to_string())?;
        Ok(summary)
    }

    /// Rewrites summary.csv with every finished cell, in grid order.
    fn write_summary(&self) -> Result<(), RunError> {
        crate::summary::write_summary(&self.grid_dir, self.cells, self.experiment.iterations)
            .map(drop)
            .map_err(io_at(&self.grid_dir.join(SUMMARY_FILE)))
    }
}

/// The summary of a finished cell from its log rows and the trainer's features.
fn summarize(
    rows: &[LogRow],
    outcome: &CellOutcome,
    experiment: &Experiment,
    wall: f64,
) -> CellSummary {
    let train: Vec<f64> = rows
        .iter()
        .filter(|r| r.phase == "train")
        .map(|r| f64::from(r.loss))
        .collect();
    let tail = &train[train.len().saturating_sub(TRAIN_LOSS_WINDOW)..];
    let train_loss = if tail.is_empty() {
        f64::NAN
    } else {
        tail.iter().sum::<f64>() / tail.len() as f64
    };
    let test_loss = rows
        .iter()
        .rev()
        .find(|r| r.phase == "test")
        .map_or(f64::NAN, |r| f64::from(r.loss));
    let knn_accuracy = metrics::knn_accuracy(
        &outcome.test_features,
        &outcome.reference_features,
        experiment.knn_k,
    );
    let labels: Vec<u8> = outcome.test_features.iter().map(|(_, l)| *l).collect();
    let pairs = metrics::pair_distances(&outcome.test_features, &metrics::balanced_pairs(&labels));
    let (pair_accuracy, threshold) = metrics::pair_accuracy(&pairs);
    CellSummary {
        iterations: experiment.iterations,
        train_loss,
        test_loss,
        knn_accuracy,
        pair_accuracy,
        pair_threshold: f64::from(threshold),
        wall_seconds: wall,
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_and_threads_fit_the_cores() {
        let fit = |cells, cores| {
            let o = RunOptions::fitting(PathBuf::from("runs"), cells, cores, false);
            (o.workers, o.threads)
        };
        assert_eq!(fit(4, 2), (2, 1));
        assert_eq!(fit(1, 16), (1, 16));
        assert_eq!(fit(3, 16), (3, 5));
        assert_eq!(fit(0, 1), (1, 1));
    }
}
