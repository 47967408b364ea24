//! One cell's folder, `runs/<experiment>/<cell>/`: params.toml, log.csv, features.csv, the
//! trainer's snapshots and model, and done.toml (the marker that the cell is finished).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cell_trainer::{CellSummary, Resume};
use crate::experiment::Experiment;
use crate::grid::{Cell, CellParams};

pub const PARAMS_FILE: &str = "params.toml";
pub const LOG_FILE: &str = "log.csv";
pub const FEATURES_FILE: &str = "features.csv";
pub const DONE_FILE: &str = "done.toml";

/// A row of log.csv: one training iteration or one test pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub iter: u32,
    /// `train` or `test`.
    pub phase: String,
    /// Learning rate (train rows only).
    pub lr: Option<f32>,
    pub loss: f32,
    /// Training time of the cell so far, summed over resumed runs.
    pub seconds: f64,
}

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

    /// The summary of a finished cell; `None` when done.toml is absent or unreadable.
    pub fn done(&self) -> Option<CellSummary> {
        let text = fs::read_to_string(self.dir.join(DONE_FILE)).ok()?;
        toml::from_str(&text).ok()
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

    /// log.csv rows up to iteration `upto` (what a resumed run keeps); a torn last line from
    /// a killed run ends the read.
    pub fn read_log(&self, upto: u32) -> Vec<LogRow> {
        let Ok(mut reader) = csv::Reader::from_path(self.dir.join(LOG_FILE)) else {
            return Vec::new();
        };
        reader
            .deserialize::<LogRow>()
            .map_while(Result::ok)
            .filter(|r| r.iter <= upto)
            .collect()
    }

    /// Starts log.csv afresh with `rows`, returning a writer to append to.
    pub fn start_log(&self, rows: &[LogRow]) -> io::Result<csv::Writer<fs::File>> {
        let mut bytes = Vec::new();
        {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut bytes);
            w.write_record(["iter", "phase", "lr", "loss", "seconds"])?;
            for row in rows {
                w.serialize(row)?;
            }
            w.flush()?;
        }
        write_atomic(&self.dir.join(LOG_FILE), &bytes)?;
        let file = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        Ok(csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file))
    }

    /// features.csv: `digit,f0,f1,...` for each test image.
    pub fn write_features(&self, features: &[(Vec<f32>, u8)]) -> io::Result<()> {
        let dim = features.first().map_or(0, |(f, _)| f.len());
        let mut w = csv::Writer::from_writer(Vec::new());
        let header: Vec<String> = std::iter::once("digit".to_string())
            .chain((0..dim).map(|i| format!("f{i}")))
            .collect();
        w.write_record(&header)?;
        for (f, digit) in features {
            let record: Vec<String> = std::iter::once(digit.to_string())
                .chain(f.iter().map(|x| x.to_string()))
                .collect();
            w.write_record(&record)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
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
    pub fn read_features(&self) -> Option<Vec<(Vec<f32>, u8)>> {
        let mut reader = csv::Reader::from_path(self.dir.join(FEATURES_FILE)).ok()?;
        let mut features = Vec::new();
        for record in reader.records() {
            let record = record.ok()?;
            let digit: u8 = record.get(0)?.parse().ok()?;
            let f: Option<Vec<f32>> = record.iter().skip(1).map(|x| x.parse().ok()).collect();
            features.push((f?, digit));
        }
        Some(features)
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
