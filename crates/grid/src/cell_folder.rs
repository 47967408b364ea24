//! One cell's folder, `runs/<experiment>/<cell>/`: params.toml, log.csv (`cell_log`),
//! features.csv, the trainer's snapshots and model, and done.toml (the cell is finished).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use siamese_report::metrics::{self, MetricOptions, Points};
use siamese_report::{LabelledFeatures, LogRow, features_csv, parse_log_lines};

use crate::cell_log::LOG_FILE;
use crate::cell_trainer::{CellSummary, Resume};
use crate::cells::{Cell, CellParams};
use crate::experiment::Experiment;

/// done.toml as cells wrote it before they kept their embedding's metrics.
#[derive(Deserialize)]
struct EarlierSummary {
    iterations: u32,
    train_loss: f64,
    test_loss: f64,
    wall_seconds: f64,
}

/// done.toml of a cell that early stopping pruned (`state = "pruned"`); a finished cell's
/// done.toml is its [`CellSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunedCell {
    /// Always `pruned`; it tells this done.toml from a finished cell's.
    pub state: String,
    /// The iteration the cell stopped at.
    pub iterations: u32,
    /// The metric it was decided on, and its value then.
    pub metric: String,
    pub value: f64,
    pub reason: String,
    /// Training time, summed over resumed runs.
    pub wall_seconds: f64,
}

/// The `state` of a pruned cell's done.toml.
pub const PRUNED: &str = "pruned";

pub const PARAMS_FILE: &str = "params.toml";
pub const FEATURES_FILE: &str = "features.csv";
pub const DONE_FILE: &str = "done.toml";

#[derive(Serialize)]
struct ParamsFile<'a> {
    experiment: &'a str,
    cell: &'a str,
    solver: &'a Path,
    net: &'a Path,
    data: &'a Path,
    iterations: u32,
    test_interval: u32,
    snapshot_interval: u32,
    params: &'a CellParams,
}

/// The folder of one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellFolder {
    pub dir: PathBuf,
}

impl CellFolder {
    pub fn new(dir: PathBuf) -> CellFolder {
        CellFolder { dir }
    }

    /// The summary of a finished cell; `None` when done.toml is absent or unreadable. A
    /// done.toml written before cells kept their metrics gets them from features.csv.
    pub fn done(&self) -> Option<CellSummary> {
        let text = fs::read_to_string(self.dir.join(DONE_FILE)).ok()?;
        if let Ok(summary) = toml::from_str(&text) {
            return Some(summary);
        }
        let earlier: EarlierSummary = toml::from_str(&text).ok()?;
        let rows = siamese_report::read_features(&self.dir.join(FEATURES_FILE)).ok()?;
        let points = Points::from_rows(&rows)?;
        Some(CellSummary {
            iterations: earlier.iterations,
            train_loss: earlier.train_loss,
            test_loss: earlier.test_loss,
            wall_seconds: earlier.wall_seconds,
            metrics: metrics::evaluate(&points, None, MetricOptions::default()),
        })
    }

    /// The done.toml of a cell early stopping pruned; `None` for any other (or none).
    pub fn pruned(&self) -> Option<PrunedCell> {
        let text = fs::read_to_string(self.dir.join(DONE_FILE)).ok()?;
        toml::from_str::<PrunedCell>(&text)
            .ok()
            .filter(|p| p.state == PRUNED)
    }

    /// Marks the cell pruned: it is not trained again until `--fresh`.
    pub fn write_pruned(&self, pruned: &PrunedCell) -> io::Result<()> {
        let text = toml::to_string(pruned).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(DONE_FILE), text.as_bytes())
    }

    /// The newest `<prefix>_iter_<N>.solverstate` with `N <= max_iter`.
    pub fn latest_snapshot(&self, max_iter: u32) -> Option<Resume> {
        let entries = fs::read_dir(&self.dir).ok()?;
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".solverstate")?;
                let iter: u32 = stem.rsplit_once("_iter_")?.1.parse().ok()?;
                (iter <= max_iter).then(|| Resume {
                    iter,
                    solverstate: e.path(),
                })
            })
            .max_by_key(|r| r.iter)
    }

    pub fn write_params(&self, experiment: &Experiment, cell: &Cell) -> io::Result<()> {
        let file = ParamsFile {
            experiment: &experiment.name,
            cell: &cell.id,
            solver: &experiment.solver,
            net: &experiment.net,
            data: &experiment.data.dir,
            iterations: experiment.iterations,
            test_interval: experiment.test_interval,
            snapshot_interval: experiment.snapshot_interval,
            params: &cell.params,
        };
        let text = toml::to_string(&file).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(PARAMS_FILE), text.as_bytes())
    }

    /// Every complete row of log.csv (none when it is missing); a torn last line from a
    /// killed run, or any line that is not a row, is left out.
    pub fn read_log(&self) -> Vec<LogRow> {
        fs::read(self.dir.join(LOG_FILE)).map_or_else(|_| Vec::new(), |b| parse_log_lines(&b))
    }

    /// features.csv (siamese-report's features CSV) for the test images.
    pub fn write_features(&self, features: &LabelledFeatures) -> io::Result<()> {
        let dim = features.first().map_or(0, |(f, _)| f.len());
        let bytes = features_csv(dim, features.iter().map(|(f, d)| (f.as_slice(), Some(*d))));
        write_atomic(&self.dir.join(FEATURES_FILE), &bytes)
    }

    /// Removes a done.toml left by a run with another iteration count.
    pub fn clear_done(&self) -> io::Result<()> {
        match fs::remove_file(self.dir.join(DONE_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes the temporary files of writes cut short when an earlier run was killed (see
    /// [`siamese_files::remove_stale_temp_files`]). Other files stay. Returns the removed paths.
    pub fn remove_stale_temp_files(&self) -> Result<Vec<PathBuf>, siamese_files::FileError> {
        siamese_files::remove_stale_temp_files(&self.dir)
    }

    /// features.csv as written by [`CellFolder::write_features`]; `None` if absent or bad.
    pub fn read_features(&self) -> Option<LabelledFeatures> {
        siamese_report::read_features(&self.dir.join(FEATURES_FILE)).ok()
    }

    /// Marks the cell finished.
    pub fn write_done(&self, summary: &CellSummary) -> io::Result<()> {
        let text = toml::to_string(summary).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(DONE_FILE), text.as_bytes())
    }
}

/// Writes `bytes` to `path` atomically (see [`siamese_files::write_atomic`]); the temporary
/// name is unique to this write, so tasks on other hosts sharing the folder never collide.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    siamese_files::write_atomic(path, bytes).map_err(|e| e.error)
}
