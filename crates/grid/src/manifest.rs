//! `runs/<experiment>/grid.toml`: the grid's cells (index, id, axis values) and iteration
//! count, written beside the cell folders so `--watch` shows every cell, queued ones included,
//! without the experiment file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cell_folder::write_atomic;
use crate::cells::Cell;
use crate::experiment::{AXIS_KEYS, Experiment};
use crate::ranking::{DEFAULT_METRIC, RankMetric};

pub const MANIFEST_FILE: &str = "grid.toml";

/// A grid.toml that cannot be read, or whose cells are not a grid's.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "{}: not found: expected a grid folder written by siamese-tui (runs/<experiment>/, \
         made by running the grid, `slurm` or `run-cell`)", .path.display()
    )]
    NotFound { path: PathBuf },
    #[error("{}: {error}", .path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: {message}", .path.display())]
    Format { path: PathBuf, message: String },
    #[error("{MANIFEST_FILE}: cell {id} has index {index}, expected {expected}")]
    Index {
        id: String,
        index: usize,
        expected: usize,
    },
    #[error("{MANIFEST_FILE}: cell {id}: unknown axis `{key}`")]
    UnknownAxis { id: String, key: String },
}

/// grid.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridManifest {
    pub experiment: String,
    pub iterations: u32,
    /// The experiment's ranking metric (grid.toml files written before it: MAP@R).
    #[serde(default = "default_metric")]
    pub metric: String,
    pub cells: Vec<ManifestCell>,
}

fn default_metric() -> String {
    DEFAULT_METRIC.to_string()
}

/// One cell as the watcher needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestCell {
    pub index: usize,
    pub id: String,
    /// `[axis key, value]` in the order of the id.
    pub values: Vec<(String, String)>,
}

impl GridManifest {
    pub fn new(experiment: &Experiment, cells: &[Cell]) -> GridManifest {
        GridManifest {
            experiment: experiment.name.clone(),
            iterations: experiment.iterations,
            metric: experiment.metric.key.to_string(),
            cells: cells
                .iter()
                .map(|c| ManifestCell {
                    index: c.index,
                    id: c.id.clone(),
                    values: c
                        .values
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Writes `grid_dir/grid.toml` unless it already holds the same grid (concurrent
    /// writers write the same bytes; the rename is atomic either way).
    pub fn write(&self, grid_dir: &Path) -> io::Result<()> {
        let text = toml::to_string(self).map_err(io::Error::other)?;
        let path = grid_dir.join(MANIFEST_FILE);
        if fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(());
        }
        write_atomic(&path, text.as_bytes())
    }

    /// Reads `grid_dir/grid.toml`; the error is one line naming the file.
    pub fn read(grid_dir: &Path) -> Result<GridManifest, ManifestError> {
        let path = grid_dir.join(MANIFEST_FILE);
        let text = match fs::read_to_string(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ManifestError::NotFound { path });
            }
            Err(error) => return Err(ManifestError::Io { path, error }),
            Ok(text) => text,
        };
        toml::from_str(&text).map_err(|e| ManifestError::Format {
            message: e.message().to_string(),
            path,
        })
    }

    /// The ranking metric (an unknown name, from a newer siamese, reads as MAP@R).
    pub fn rank_metric(&self) -> RankMetric {
        RankMetric::named(&self.metric)
            .or_else(|| RankMetric::named(DEFAULT_METRIC))
            .expect("the default metric exists")
    }

    /// The cells, as far as the screen needs them: index, id and axis values (the solver
    /// overrides are not kept in grid.toml and are left at their defaults).
    pub fn cells(&self) -> Result<Vec<Cell>, ManifestError> {
        self.cells
            .iter()
            .enumerate()
            .map(|(at, c)| {
                if c.index != at {
                    return Err(ManifestError::Index {
                        id: c.id.clone(),
                        index: c.index,
                        expected: at,
                    });
                }
                let values = c
                    .values
                    .iter()
                    .map(|(k, v)| {
                        let key = AXIS_KEYS.iter().find(|a| **a == k).ok_or_else(|| {
                            ManifestError::UnknownAxis {
                                id: c.id.clone(),
                                key: k.clone(),
                            }
                        })?;
                        Ok((*key, v.clone()))
                    })
                    .collect::<Result<_, ManifestError>>()?;
                Ok(Cell {
                    index: c.index,
                    id: c.id.clone(),
                    values,
                    params: Default::default(),
                })
            })
            .collect()
    }
}
