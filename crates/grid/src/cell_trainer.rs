//! The seam between the grid runner and a training engine: the `CellTrainer` trait, the job it
//! gets, the events it sends (and those the runner adds), its outcome, and the pause/stop `Control`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex};

use serde::{Deserialize, Serialize};
pub use siamese_layers::MemoryPlan;
use siamese_report::LabelledFeatures;
use siamese_report::metrics::EmbeddingMetrics;

use crate::cell_progress::DigitScatter;
use crate::cells::Cell;

/// Trains one cell. Implementations must be deterministic for a given job (seeded by
/// `job.cell.params.seed`) and must only write inside `job.dir` and `job.pairs_dir`.
pub trait CellTrainer: Send + Sync {
    /// Trains `job.cell` to `job.iterations`, starting from `job.resume` when set.
    ///
    /// While training: send `Train` after every iteration, `Test` (and `Embedding`) after
    /// each test pass (every `test_interval` iterations and at the end), and `Snapshot`
    /// after writing `<prefix>_iter_<N>.caffemodel` + `.solverstate` into `job.dir` every
    /// `snapshot_interval` iterations. Call `control.checkpoint()` before each iteration;
    /// on [`Flow::Stop`] write a snapshot and return [`CellOutcome::Stopped`]. When trained,
    /// the final `.caffemodel` is in `job.dir` and named in [`CellOutcome::Finished`].
    fn run(
        &self,
        job: &CellJob,
        events: &(dyn Fn(CellEvent) + Sync),
        control: &Control,
    ) -> Result<CellOutcome, CellError>;

    /// What training `job` will hold in memory, reckoned before anything is allocated
    /// (`None`: this trainer cannot tell). The runner checks every queued cell with it
    /// before the first one starts.
    fn memory_plan(&self, _job: &CellJob) -> Result<Option<MemoryPlan>, CellError> {
        Ok(None)
    }
}

/// Everything a trainer needs to run one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellJob {
    pub cell: Cell,
    /// `runs/<experiment>/<cell id>/`, already created; holds params.toml and log.csv.
    pub dir: PathBuf,
    /// Base solver and net prototxt; the cell's params override them.
    pub solver: PathBuf,
    pub net: PathBuf,
    /// Folder of MNIST IDX files (train-*/t10k-*, plain or .gz).
    pub data: PathBuf,
    /// Shared folder for the pair LevelDBs, one per (similar_fraction, seed): made on first
    /// use and reused. Workers run concurrently, so creation must be guarded.
    pub pairs_dir: PathBuf,
    /// Open-set evaluation: train on these classes, test on the others (`None`: all).
    pub train_classes: Option<Vec<u8>>,
    pub iterations: u32,
    pub test_interval: u32,
    pub snapshot_interval: u32,
    /// The snapshot to resume from (an interrupted earlier run), if any.
    pub resume: Option<Resume>,
    /// Compute threads this cell may use (workers × threads fits the cores).
    pub threads: usize,
}

/// A snapshot found in the cell folder: `<prefix>_iter_<iter>.solverstate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    pub iter: u32,
    pub solverstate: PathBuf,
}

/// How a trainer's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CellOutcome {
    /// Trained to `job.iterations`; the runner turns this into files and metrics.
    Finished(TrainedCell),
    /// Stopped on request after `at` iterations, resumable from the snapshot written there.
    Stopped { at: u32 },
}

/// What a trainer hands back for a trained cell.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedCell {
    /// The final `.caffemodel`, inside the cell folder.
    pub model: PathBuf,
    /// Features and digit of test images (written to features.csv; k-NN queries and
    /// verification pairs).
    pub test_features: LabelledFeatures,
    /// Features and digit of training images: the k-NN reference set.
    pub reference_features: LabelledFeatures,
}

/// Why a cell failed: it is retried (from its last snapshot) on the next run.
#[derive(Debug, thiserror::Error)]
pub enum CellError {
    /// The training engine's own error (bad files, a NaN loss, a device that fails).
    #[error(transparent)]
    Engine(Box<dyn std::error::Error + Send + Sync>),
    /// The trainer panicked; the runner caught it.
    #[error("trainer panicked: {message}")]
    Panicked { message: String },
    /// The trainer reported a model that is not there.
    #[error("the trainer reported model {} but it does not exist", .model.display())]
    MissingModel { model: PathBuf },
    /// The trainer's features cannot be scored: none, rows of different lengths, or (open
    /// set) no test point of a held-out class.
    #[error("the trained cell's test embedding cannot be scored: {reason}")]
    Unscorable { reason: String },
    /// The cell's result files (features.csv, done.toml, summary.csv) could not be written.
    #[error("{}: {error}", .path.display())]
    Results {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl CellError {
    /// An engine error from anything that is one (or from a message).
    pub fn engine(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CellError {
        CellError::Engine(error.into())
    }
}

/// A finished cell's row of summary.csv (also kept in the cell's done.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    pub iterations: u32,
    /// Mean of the last (up to) 50 training losses.
    pub train_loss: f64,
    /// The last test loss (NaN when no test ran).
    pub test_loss: f64,
    /// Training time, summed over resumed runs.
    pub wall_seconds: f64,
    /// The final test embedding's metrics (in an open-set grid: of the held-out classes).
    pub metrics: EmbeddingMetrics,
}

/// What happens to a cell. `cell` is the cell's index in the grid. The trainer sends
/// `Train`, `Test`, `Embedding` and `Snapshot`; the runner sends the others.
#[derive(Debug, Clone, PartialEq)]
pub enum CellEvent {
    /// The runner is starting (or resuming) the cell.
    Started {
        cell: usize,
        total_iters: u32,
        resumed_from: Option<u32>,
    },
    /// Temporary files of writes cut short when an earlier run was killed were removed from
    /// the cell's folder before it started.
    TempFilesRemoved { cell: usize, paths: Vec<PathBuf> },
    /// `iter` iterations are done (1..=total); `loss` is the last one's.
    Train {
        cell: usize,
        iter: u32,
        lr: f32,
        loss: f32,
    },
    /// A test pass after `iter` iterations: the test loss and every named test output.
    Test {
        cell: usize,
        iter: u32,
        loss: f32,
        outputs: Vec<(String, f32)>,
    },
    /// The test embedding after `scatter.iter` iterations, as a 2-D scatter of digits.
    Embedding { cell: usize, scatter: DigitScatter },
    /// A snapshot written after `iter` iterations.
    Snapshot {
        cell: usize,
        iter: u32,
        path: PathBuf,
    },
    /// The cell finished; its files and summary row are written.
    Finished { cell: usize, summary: CellSummary },
    /// The cell failed; it will be retried (from its last snapshot) on the next run.
    Failed { cell: usize, error: String },
    /// The cell finished in an earlier run and is not run again.
    Skipped { cell: usize, summary: CellSummary },
    /// The cell was stopped by the user; it resumes from its last snapshot next time.
    Stopped { cell: usize },
    /// Another runner holds the cell's claim (it is training it); this runner leaves it.
    ClaimedElsewhere { cell: usize },
    /// Early stopping pruned the cell after `at` iterations, now or in an earlier run; it is
    /// not trained again (until `--fresh`).
    Pruned {
        cell: usize,
        at: u32,
        reason: String,
    },
}

impl CellEvent {
    /// The index of the cell this event is about.
    pub fn cell(&self) -> usize {
        match self {
            CellEvent::Started { cell, .. }
            | CellEvent::TempFilesRemoved { cell, .. }
            | CellEvent::Train { cell, .. }
            | CellEvent::Test { cell, .. }
            | CellEvent::Embedding { cell, .. }
            | CellEvent::Snapshot { cell, .. }
            | CellEvent::Finished { cell, .. }
            | CellEvent::Failed { cell, .. }
            | CellEvent::Skipped { cell, .. }
            | CellEvent::Stopped { cell }
            | CellEvent::ClaimedElsewhere { cell }
            | CellEvent::Pruned { cell, .. } => *cell,
        }
    }
}

/// What a trainer does at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Pause and stop requests from the screen (or Ctrl-C), shared by the runner and trainers.
/// [`Control::for_cell`] gives one cell its own control: the same pause and stop, plus a
/// stop of that cell alone (early stopping).
#[derive(Debug, Default)]
pub struct Control {
    shared: Arc<SharedControl>,
    cell_stop: AtomicBool,
}

#[derive(Debug, Default)]
struct SharedControl {
    state: Mutex<ControlState>,
    changed: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct ControlState {
    paused: bool,
    stop: bool,
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }

    /// A control sharing this one's pause and stop, with a stop of its own.
    pub fn for_cell(&self) -> Control {
        Control {
            shared: Arc::clone(&self.shared),
            cell_stop: AtomicBool::new(false),
        }
    }

    /// Blocks while paused; says whether to go on or stop.
    pub fn checkpoint(&self) -> Flow {
        let mut state = self.lock();
        while state.paused && !state.stop && !self.cell_stopped() {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        if state.stop || self.cell_stopped() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    /// Asks every running cell to snapshot and stop, and no new cell to start.
    pub fn request_stop(&self) {
        self.lock().stop = true;
        self.shared.changed.notify_all();
    }

    /// Asks the cell of this control (made by [`Control::for_cell`]) alone to stop.
    pub fn stop_cell(&self) {
        let _state = self.lock();
        self.cell_stop.store(true, AtomicOrdering::SeqCst);
        self.shared.changed.notify_all();
    }

    pub fn stop_requested(&self) -> bool {
        self.lock().stop
    }

    pub fn set_paused(&self, paused: bool) {
        self.lock().paused = paused;
        self.shared.changed.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        self.lock().paused
    }

    fn cell_stopped(&self) -> bool {
        self.cell_stop.load(AtomicOrdering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        // The state is two flags; a panic elsewhere cannot leave it inconsistent.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn checkpoint_blocks_while_paused_until_resumed() {
        let control = Arc::new(Control::new());
        control.set_paused(true);
        let c = Arc::clone(&control);
        let waiter = std::thread::spawn(move || c.checkpoint());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "checkpoint returned while paused");
        control.set_paused(false);
        assert_eq!(waiter.join().unwrap(), Flow::Continue);
    }

    #[test]
    fn stop_releases_a_paused_checkpoint() {
        let control = Arc::new(Control::new());
        control.set_paused(true);
        let c = Arc::clone(&control);
        let waiter = std::thread::spawn(move || c.checkpoint());
        control.request_stop();
        assert_eq!(waiter.join().unwrap(), Flow::Stop);
        assert!(control.stop_requested());
    }

    #[test]
    fn a_cell_stop_stops_that_cell_only_and_a_grid_stop_reaches_every_cell() {
        let grid = Control::new();
        let (a, b) = (grid.for_cell(), grid.for_cell());
        a.stop_cell();
        assert_eq!(
            (a.checkpoint(), b.checkpoint()),
            (Flow::Stop, Flow::Continue)
        );
        assert_eq!(grid.checkpoint(), Flow::Continue);
        grid.set_paused(true);
        assert!(b.is_paused(), "a cell's control shares the pause");
        grid.request_stop();
        assert_eq!(b.checkpoint(), Flow::Stop);
    }
}
