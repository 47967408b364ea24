//! `runs/<experiment>/summary.csv`, rebuilt from every finished cell's done.toml and renamed
//! into place, so grid workers and concurrent Slurm array tasks can all keep it up to date.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::cell_folder::{CellFolder, write_atomic};
use crate::cell_trainer::CellSummary;
use crate::grid::Cell;

/// Name of the grid's results table inside `runs/<experiment>/`.
pub const SUMMARY_FILE: &str = "summary.csv";
/// Rebuilds after which a writer that still sees the table change leaves it to the others.
const MAX_ROUNDS: usize = 50;

/// The finished cells of the grid in `grid_dir`: those whose done.toml says `iterations`.
pub fn finished_cells(
    grid_dir: &Path,
    cells: &[Cell],
    iterations: u32,
) -> BTreeMap<usize, CellSummary> {
    cells
        .iter()
        .filter_map(|cell| {
            let summary = CellFolder::new(grid_dir.join(&cell.id)).done()?;
            (summary.iterations == iterations).then_some((cell.index, summary))
        })
        .collect()
}

/// Rewrites `grid_dir/summary.csv` from the finished cells on disk; returns its path.
///
/// Writers race on a shared filesystem: one may rename an older table over a newer one. So
/// each writer reads the cells again after its rename and rebuilds until the table it wrote
/// is the one the disk describes. done.toml files are written before this is called, so the
/// last writer to rename always saw every finished cell, whichever task it belongs to.
pub fn write_summary(grid_dir: &Path, cells: &[Cell], iterations: u32) -> io::Result<PathBuf> {
    let path = grid_dir.join(SUMMARY_FILE);
    let mut bytes = summary_csv(cells, &finished_cells(grid_dir, cells, iterations))?;
    for _ in 0..MAX_ROUNDS {
        write_atomic(&path, &bytes)?;
        let now = summary_csv(cells, &finished_cells(grid_dir, cells, iterations))?;
        if now == bytes {
            break;
        }
        bytes = now;
    }
    Ok(path)
}

/// summary.csv: cell id, the grid's parameters (and seed), then the results.
pub fn summary_csv(
    cells: &[Cell],
    summaries: &BTreeMap<usize, CellSummary>,
) -> io::Result<Vec<u8>> {
    let mut keys: Vec<&str> = cells
        .first()
        .map(|c| c.values.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let with_seed = !keys.contains(&"seed");
    if with_seed {
        keys.push("seed");
    }
    let results = [
        "iterations",
        "train_loss",
        "test_loss",
        "knn_accuracy",
        "pair_accuracy",
        "pair_threshold",
        "wall_seconds",
    ];
    let mut w = csv::Writer::from_writer(Vec::new());
    let header: Vec<&str> = std::iter::once("cell")
        .chain(keys.iter().copied())
        .chain(results)
        .collect();
    w.write_record(&header)?;
    for (index, s) in summaries {
        let Some(cell) = cells.get(*index) else {
            continue;
        };
        let mut record: Vec<String> = vec![cell.id.clone()];
        record.extend(cell.values.iter().map(|(_, v)| v.clone()));
        if with_seed {
            record.push(cell.params.seed.to_string());
        }
        record.extend([
            s.iterations.to_string(),
            s.train_loss.to_string(),
            s.test_loss.to_string(),
            s.knn_accuracy.to_string(),
            s.pair_accuracy.to_string(),
            s.pair_threshold.to_string(),
            format!("{:.3}", s.wall_seconds),
        ]);
        w.write_record(&record)?;
    }
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}
