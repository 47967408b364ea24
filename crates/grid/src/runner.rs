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

use siamese_layers::MemoryError;
use siamese_layers::memory::{Available, format_bytes};
use siamese_report::ReportError;
use siamese_report::metrics::{self, EmbeddingMetrics, MetricOptions, Points};

use crate::cell_folder::{CellFolder, PRUNED, PrunedCell};
use crate::cell_log::{CellLog, KeptLog, LossTally};
use crate::cell_trainer::{
    CellError, CellEvent, CellJob, CellOutcome, CellSummary, CellTrainer, Control, Flow, Resume,
    TrainedCell,
};
use crate::cells::Cell;
use crate::claim;
use crate::experiment::Experiment;
use crate::manifest::{GridManifest, MANIFEST_FILE};
use crate::schedule::{self, Decision, SCHEDULE_FILE, Verdict};
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
    /// most one per cell), the cores shared among them. Measured: on 2 cores the margin sweep
    /// takes 95 s with 2 workers × 1 thread, 130 s with 1 × 2 (docs/performance.md).
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
    /// Cells another runner held the claim of when this one reached them.
    pub elsewhere: usize,
    /// Cells early stopping pruned, in this run or an earlier one.
    pub pruned: usize,
    pub summary: PathBuf,
}

/// A runner error that stops the whole grid (cell failures do not).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// (The cause is in the message, not a separate `source()`, so printing the chain does
    /// not repeat it.)
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    /// A cell's log.csv could not be written.
    #[error(transparent)]
    Log(ReportError),
    /// The runner's own thread panicked (trainer panics are cell failures instead).
    #[error("the grid runner panicked: {message}")]
    Panicked { message: String },
    /// A temporary file could not be swept or a file not written.
    #[error(transparent)]
    File(#[from] siamese_files::FileError),
    /// `--fresh` would delete a cell that another runner is training.
    #[error(
        "{}: another runner is training this cell (it holds {}); --fresh would delete its work: stop that runner first",
        cell.display(),
        claim::CLAIM_FILE
    )]
    ClaimedElsewhere { cell: PathBuf },
    /// A cell would need more memory than this process may use (checked before any trains).
    #[error("{0}")]
    Memory(Box<MemoryError>),
    /// The cells `workers` would train side by side do not fit together.
    #[error(
        "{workers} workers training side by side need {} ({}), {} available ({}); use fewer --workers",
        format_bytes(*needed),
        cells.iter().map(|(id, b)| format!("cell {id} {}", format_bytes(*b))).collect::<Vec<_>>().join(", "),
        format_bytes(available.bytes),
        available.source
    )]
    MemoryTogether {
        workers: usize,
        needed: u64,
        cells: Vec<(String, u64)>,
        available: Available,
    },
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
    let pairs_dir = prepare_grid_dir(experiment, cells, &grid_dir, options.fresh)?;
    let shared = Shared {
        experiment,
        cells,
        trainer,
        control,
        pairs_dir,
        threads: options.threads,
        report: Mutex::new(GridReport {
            summary: grid_dir.join(SUMMARY_FILE),
            ..Default::default()
        }),
        grid_dir,
    };
    let queue = shared.unfinished(selected, &events);
    shared.check_memory(&queue, options.workers)?;
    shared.write_summary()?;
    run_workers(&shared, &queue, options.workers, &events)?;
    drop(events);
    Ok(shared
        .report
        .into_inner()
        .unwrap_or_else(|e| e.into_inner()))
}

/// Makes `grid_dir` ready: cleared when `fresh`, with its pairs folder and grid.toml.
/// Returns the pairs folder.
fn prepare_grid_dir(
    experiment: &Experiment,
    cells: &[Cell],
    grid_dir: &Path,
    fresh: bool,
) -> Result<PathBuf, RunError> {
    if fresh && grid_dir.exists() {
        clear_results(grid_dir)?;
    }
    let pairs_dir = grid_dir.join(PAIRS_DIR);
    fs::create_dir_all(&pairs_dir).map_err(io_at(&pairs_dir))?;
    GridManifest::new(experiment, cells)
        .write(grid_dir)
        .map_err(io_at(&grid_dir.join(MANIFEST_FILE)))?;
    Ok(pairs_dir)
}

/// Trains the `queue` on `workers` threads, each taking the next cell until the queue is
/// empty or a stop is requested; the first runner error stops them all.
fn run_workers(
    shared: &Shared<'_>,
    queue: &[(&Cell, CellFolder)],
    workers: usize,
    events: &Sender<CellEvent>,
) -> Result<(), RunError> {
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<RunError>> = Mutex::new(None);
    let control = shared.control;
    std::thread::scope(|scope| {
        for w in 0..workers.max(1) {
            let events = events.clone();
            let (next, first_error) = (&next, &first_error);
            std::thread::Builder::new()
                .name(format!("siamese-worker-{w}"))
                .spawn_scoped(scope, move || {
                    while control.checkpoint() == Flow::Continue {
                        let Some((cell, folder)) = queue.get(next.fetch_add(1, Ordering::SeqCst))
                        else {
                            break;
                        };
                        if let Err(e) = shared.claim_and_run(cell, folder, &events) {
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
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Removes everything in `grid_dir` but the pair LevelDBs. Every cell folder is claimed
/// first, so a cell another runner is training is an error before anything is deleted.
fn clear_results(grid_dir: &Path) -> Result<(), RunError> {
    let mut doomed = Vec::new();
    for entry in fs::read_dir(grid_dir).map_err(io_at(grid_dir))? {
        let entry = entry.map_err(io_at(grid_dir))?;
        if entry.file_name() != PAIRS_DIR {
            doomed.push(entry.path());
        }
    }
    let mut claims = Vec::new();
    for dir in doomed.iter().filter(|p| p.is_dir()) {
        match claim::try_claim(dir).map_err(io_at(dir))? {
            Some(claim) => claims.push(claim),
            None => return Err(RunError::ClaimedElsewhere { cell: dir.clone() }),
        }
    }
    for path in &doomed {
        let removed = if path.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        removed.map_err(io_at(path))?;
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

/// What a cell's training run gave: the trainer's result, the log, the training time, and
/// the early-stopping decision that stopped it (or the error deciding).
struct TrainRun {
    result: Result<CellOutcome, CellError>,
    log: CellLog,
    wall: f64,
    pruned: Option<PrunedCell>,
    decision_error: Option<RunError>,
}

/// A cell folder made ready to train in: what to resume from and the log to continue.
struct PreparedCell {
    resume: Option<Resume>,
    log: CellLog,
    /// Training time of earlier runs of the cell.
    seconds_before: f64,
}

impl<'a> Shared<'a> {
    fn lock_report(&self) -> std::sync::MutexGuard<'_, GridReport> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `selected` cells that are not finished yet, with their folders; the finished ones
    /// are reported as `Skipped`.
    fn unfinished(
        &self,
        selected: &[usize],
        events: &Sender<CellEvent>,
    ) -> Vec<(&'a Cell, CellFolder)> {
        let mut queue = Vec::new();
        let cells: &'a [Cell] = self.cells;
        for cell in cells.iter().filter(|c| selected.contains(&c.index)) {
            let folder = CellFolder::new(self.grid_dir.join(&cell.id));
            if self.report_pruned(cell, &folder, events) {
                continue;
            }
            match self.finished(&folder) {
                Some(summary) => {
                    self.lock_report().skipped += 1;
                    let _ = events.send(CellEvent::Skipped {
                        cell: cell.index,
                        summary,
                    });
                }
                None => queue.push((cell, folder)),
            }
        }
        queue
    }

    /// Reports the cell in `folder` as pruned when its done.toml says so.
    fn report_pruned(&self, cell: &Cell, folder: &CellFolder, events: &Sender<CellEvent>) -> bool {
        let Some(pruned) = folder.pruned() else {
            return false;
        };
        self.lock_report().pruned += 1;
        let _ = events.send(CellEvent::Pruned {
            cell: cell.index,
            at: pruned.iterations,
            reason: pruned.reason,
        });
        true
    }

    /// The summary of the cell in `folder` when it is finished at this experiment's length.
    fn finished(&self, folder: &CellFolder) -> Option<CellSummary> {
        folder
            .done()
            .filter(|s| s.iterations == self.experiment.iterations)
    }

    /// Trains the cell when this runner can claim it. A cell claimed by another runner, or
    /// finished by one since the queue was made, is reported and left alone.
    fn claim_and_run(
        &self,
        cell: &Cell,
        folder: &CellFolder,
        events: &Sender<CellEvent>,
    ) -> Result<(), RunError> {
        let Some(_claim) = claim::try_claim(&folder.dir).map_err(io_at(&folder.dir))? else {
            self.lock_report().elsewhere += 1;
            let _ = events.send(CellEvent::ClaimedElsewhere { cell: cell.index });
            return Ok(());
        };
        if self.report_pruned(cell, folder, events) {
            return Ok(());
        }
        if let Some(summary) = self.finished(folder) {
            self.lock_report().skipped += 1;
            let _ = events.send(CellEvent::Skipped {
                cell: cell.index,
                summary,
            });
            return Ok(());
        }
        self.run_cell(cell, folder, events)
    }

    /// Trains one cell and writes its files; an `Err` is a runner failure (disk), while a
    /// trainer failure is reported as `Failed` and the grid goes on.
    fn run_cell(
        &self,
        cell: &Cell,
        folder: &CellFolder,
        events: &Sender<CellEvent>,
    ) -> Result<(), RunError> {
        let prepared = self.prepare_folder(cell, folder, events)?;
        let _ = events.send(CellEvent::Started {
            cell: cell.index,
            total_iters: self.experiment.iterations,
            resumed_from: prepared.resume.as_ref().map(|r| r.iter),
        });
        let run = self.train(cell, folder, prepared, events);
        let tally = run.log.finish().map_err(RunError::Log)?;
        if let Some(error) = run.decision_error {
            return Err(error);
        }
        let ended = match (run.result, run.pruned) {
            (Ok(CellOutcome::Stopped { .. }), Some(pruned)) => {
                let reason = pruned.reason.clone();
                let at = pruned.iterations;
                self.prune_cell(folder, pruned)?;
                self.lock_report().pruned += 1;
                let _ = events.send(CellEvent::Pruned {
                    cell: cell.index,
                    at,
                    reason,
                });
                return Ok(());
            }
            (Ok(CellOutcome::Finished(trained)), _) => self
                .finish_cell(folder, &trained, &tally, run.wall)
                .map(Some),
            (Ok(CellOutcome::Stopped { .. }), None) => Ok(None),
            (Err(e), _) => Err(e),
        };
        self.report_end(cell.index, ended, events);
        Ok(())
    }

    /// Writes the pruned cell's done.toml and the summary (a disk error is a runner error:
    /// the decision is kept in schedule.csv and made again on the next run).
    fn prune_cell(&self, folder: &CellFolder, pruned: PrunedCell) -> Result<(), RunError> {
        let done = folder.dir.join(crate::cell_folder::DONE_FILE);
        folder.write_pruned(&pruned).map_err(io_at(&done))?;
        self.write_summary()
    }

    /// The early-stopping decision after the cell's test at `iter` with `loss`, when the
    /// schedule decides there (under the grid's schedule lock).
    fn decide(&self, cell: &Cell, iter: u32, loss: f32) -> Result<Option<Verdict>, RunError> {
        let exp = self.experiment;
        let Some(schedule) = &exp.schedule else {
            return Ok(None);
        };
        if !schedule.decides_at(iter, exp.test_interval, exp.iterations) {
            return Ok(None);
        }
        let metric = &exp.metric;
        schedule::decide_on_disk(
            &self.grid_dir,
            schedule,
            metric,
            &cell.id,
            loss.into(),
            iter,
        )
        .map(Some)
        .map_err(io_at(&self.grid_dir.join(SCHEDULE_FILE)))
    }

    /// Creates the cell folder (or cleans one an earlier run left), writes params.toml,
    /// finds the snapshot to resume from and starts log.csv with the rows kept before it.
    fn prepare_folder(
        &self,
        cell: &Cell,
        folder: &CellFolder,
        events: &Sender<CellEvent>,
    ) -> Result<PreparedCell, RunError> {
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
        let kept = match &resume {
            Some(r) => KeptLog::resuming(folder.read_log(), r.iter),
            None => KeptLog::default(),
        };
        let log = CellLog::start(&folder.dir, &kept).map_err(RunError::Log)?;
        Ok(PreparedCell {
            resume,
            log,
            seconds_before: kept.seconds(),
        })
    }

    /// The trainer's job for `cell` in `folder`.
    fn job(&self, cell: &Cell, folder: &CellFolder, resume: Option<Resume>) -> CellJob {
        let exp = self.experiment;
        CellJob {
            cell: cell.clone(),
            dir: folder.dir.clone(),
            solver: exp.solver.clone(),
            net: exp.net.clone(),
            data: exp.data.dir.clone(),
            pairs_dir: self.pairs_dir.clone(),
            train_classes: exp.train_classes.clone(),
            iterations: exp.iterations,
            test_interval: exp.test_interval,
            snapshot_interval: exp.snapshot_interval,
            resume,
            threads: self.threads,
        }
    }

    /// Checks, before any cell trains, that each queued cell fits in the memory this process
    /// may use, and that the `workers` largest fit side by side. Cells whose plan cannot be
    /// made are left to fail on their own when they run.
    fn check_memory(&self, queue: &[(&Cell, CellFolder)], workers: usize) -> Result<(), RunError> {
        let available = Available::now();
        let mut needs = Vec::new();
        for (cell, folder) in queue {
            let Ok(Some(plan)) = self.trainer.memory_plan(&self.job(cell, folder, None)) else {
                continue;
            };
            plan.check(&format!("cell {}", cell.id), available)
                .map_err(|e| RunError::Memory(Box::new(e)))?;
            needs.push((cell.id.clone(), plan.total()));
        }
        needs.sort_by_key(|n| std::cmp::Reverse(n.1));
        needs.truncate(workers.max(1));
        let together = needs.iter().fold(0u64, |n, (_, b)| n.saturating_add(*b));
        match available {
            Some(a) if needs.len() > 1 && together > a.bytes => Err(RunError::MemoryTogether {
                workers: needs.len(),
                needed: together,
                cells: needs,
                available: a,
            }),
            _ => Ok(()),
        }
    }

    /// Runs the trainer on the prepared cell, logging its events (a panic is the cell's
    /// failure). Returns its result, the log and the cell's training time.
    fn train(
        &self,
        cell: &Cell,
        folder: &CellFolder,
        prepared: PreparedCell,
        events: &Sender<CellEvent>,
    ) -> TrainRun {
        let exp = self.experiment;
        let job = self.job(cell, folder, prepared.resume);
        let seconds_before = prepared.seconds_before;
        let log = Mutex::new(prepared.log);
        let control = self.control.for_cell();
        let pruned: Mutex<Option<(u32, f32, Verdict)>> = Mutex::new(None);
        let decision_error: Mutex<Option<RunError>> = Mutex::new(None);
        let start = Instant::now();
        let on_event = |event: CellEvent| {
            let seconds = seconds_before + start.elapsed().as_secs_f64();
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(&event, seconds);
            let test = match &event {
                CellEvent::Test { iter, loss, .. } => Some((*iter, *loss)),
                _ => None,
            };
            let _ = events.send(event);
            // The decision follows the test's row in log.csv; the trainer stops at its next
            // checkpoint, before another iteration.
            let Some((iter, loss)) = test else {
                return;
            };
            match self.decide(cell, iter, loss) {
                Ok(Some(v)) if v.decision == Decision::Prune => {
                    *pruned.lock().unwrap_or_else(|e| e.into_inner()) = Some((iter, loss, v));
                    control.stop_cell();
                }
                Err(e) => {
                    *decision_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    control.stop_cell();
                }
                _ => {}
            }
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.trainer.run(&job, &on_event, &control)
        }))
        .unwrap_or_else(|panic| {
            Err(CellError::Panicked {
                message: panic_message(&panic),
            })
        });
        let wall = seconds_before + start.elapsed().as_secs_f64();
        TrainRun {
            result,
            log: log.into_inner().unwrap_or_else(|e| e.into_inner()),
            wall,
            pruned: pruned.into_inner().unwrap_or_else(|e| e.into_inner()).map(
                |(iter, loss, verdict)| PrunedCell {
                    state: PRUNED.to_string(),
                    iterations: iter,
                    metric: exp.metric.key.to_string(),
                    value: loss.into(),
                    reason: verdict.reason,
                    wall_seconds: wall,
                },
            ),
            decision_error: decision_error
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Counts and reports how the cell ended: finished (with its summary), stopped (`None`)
    /// or failed.
    fn report_end(
        &self,
        cell: usize,
        ended: Result<Option<CellSummary>, CellError>,
        events: &Sender<CellEvent>,
    ) {
        let event = match ended {
            Ok(Some(summary)) => {
                self.lock_report().finished += 1;
                CellEvent::Finished { cell, summary }
            }
            Ok(None) => {
                self.lock_report().stopped += 1;
                CellEvent::Stopped { cell }
            }
            Err(error) => {
                self.lock_report().failed += 1;
                CellEvent::Failed {
                    cell,
                    error: error.to_string(),
                }
            }
        };
        let _ = events.send(event);
    }

    /// Checks the trained cell, computes the metrics, writes features.csv, done.toml and
    /// the summary; a problem here is the cell's failure.
    fn finish_cell(
        &self,
        folder: &CellFolder,
        trained: &TrainedCell,
        tally: &LossTally,
        wall: f64,
    ) -> Result<CellSummary, CellError> {
        if !trained.model.is_file() {
            return Err(CellError::MissingModel {
                model: trained.model.clone(),
            });
        }
        let summary = summarize(tally, trained, self.experiment, wall)?;
        let results = |error| CellError::Results {
            path: folder.dir.clone(),
            error,
        };
        folder
            .write_features(&trained.test_features)
            .map_err(results)?;
        folder.write_done(&summary).map_err(results)?;
        crate::summary::write_summary(&self.grid_dir, self.cells, self.experiment.iterations)
            .map_err(|error| CellError::Results {
                path: self.grid_dir.join(SUMMARY_FILE),
                error,
            })?;
        Ok(summary)
    }

    /// Rewrites summary.csv with every finished cell, in grid order.
    fn write_summary(&self) -> Result<(), RunError> {
        crate::summary::write_summary(&self.grid_dir, self.cells, self.experiment.iterations)
            .map(drop)
            .map_err(io_at(&self.grid_dir.join(SUMMARY_FILE)))
    }
}

/// The summary of a finished cell from its logged losses and the trainer's features.
fn summarize(
    tally: &LossTally,
    trained: &TrainedCell,
    experiment: &Experiment,
    wall: f64,
) -> Result<CellSummary, CellError> {
    Ok(CellSummary {
        iterations: experiment.iterations,
        train_loss: tally.mean_train_loss(TRAIN_LOSS_WINDOW),
        test_loss: tally.last_test_loss(),
        wall_seconds: wall,
        metrics: cell_metrics(trained, experiment)?,
    })
}

/// The metrics of a cell's test embedding. In an open-set grid only the held-out classes are
/// scored, and there is no k-NN reference (the reference holds the training classes only).
pub fn cell_metrics(
    trained: &TrainedCell,
    experiment: &Experiment,
) -> Result<EmbeddingMetrics, CellError> {
    let unscorable = |reason: &str| CellError::Unscorable {
        reason: reason.to_string(),
    };
    let options = MetricOptions {
        k: experiment.knn_k,
        ..MetricOptions::default()
    };
    let test = Points::from_rows(&trained.test_features)
        .ok_or_else(|| unscorable("no test features, or rows of different lengths"))?;
    let Some(seen) = &experiment.train_classes else {
        let reference = Points::from_rows(&trained.reference_features)
            .ok_or_else(|| unscorable("no reference features, or rows of different lengths"))?;
        return Ok(metrics::evaluate(&test, Some(&reference), options));
    };
    let unseen = test.with_labels(|l| !seen.contains(&l));
    if unseen.is_empty() {
        return Err(unscorable("no test digit of a class outside train_classes"));
    }
    Ok(metrics::evaluate(&unseen, None, options))
}

/// The text a panic carried.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
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
