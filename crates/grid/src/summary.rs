//! `runs/<experiment>/summary.csv`, rebuilt from every finished cell's done.toml and renamed
//! into place, so grid workers and concurrent Slurm array tasks can all keep it up to date.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::cell_folder::{CellFolder, write_atomic};
use crate::cell_trainer::CellSummary;
use crate::cells::Cell;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(n: usize) -> Vec<Cell> {
        (0..n)
            .map(|index| Cell {
                index,
                id: format!("{index:03}-margin_{index}"),
                values: vec![("margin", index.to_string())],
                params: Default::default(),
            })
            .collect()
    }

    fn summary(iterations: u32, index: usize) -> CellSummary {
        CellSummary {
            iterations,
            train_loss: 0.5,
            test_loss: 0.25,
            knn_accuracy: 0.9,
            pair_accuracy: 0.8,
            pair_threshold: 1.0,
            wall_seconds: index as f64,
        }
    }

    fn finish(grid: &Path, cell: &Cell, iterations: u32) {
        let folder = CellFolder::new(grid.join(&cell.id));
        std::fs::create_dir_all(&folder.dir).unwrap();
        folder.write_done(&summary(iterations, cell.index)).unwrap();
    }

    fn listed(grid: &Path) -> Vec<String> {
        csv::Reader::from_path(grid.join(SUMMARY_FILE))
            .unwrap()
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect()
    }

    #[test]
    fn the_table_lists_finished_cells_of_these_iterations_in_grid_order() {
        let dir = tempfile::tempdir().unwrap();
        let cells = cells(4);
        finish(dir.path(), &cells[2], 100);
        finish(dir.path(), &cells[0], 100);
        finish(dir.path(), &cells[1], 50);
        write_summary(dir.path(), &cells, 100).unwrap();
        assert_eq!(listed(dir.path()), ["000-margin_0", "002-margin_2"]);
        let text = std::fs::read_to_string(dir.path().join(SUMMARY_FILE)).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "cell,margin,seed,iterations,train_loss,test_loss,knn_accuracy,pair_accuracy,pair_threshold,wall_seconds"
        );
    }

    #[test]
    fn concurrent_writers_leave_every_finished_cell_in_the_table() {
        // Each thread is a task finishing its cell and rebuilding the table at once.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let cells = cells(8);
            std::thread::scope(|scope| {
                for cell in &cells {
                    let (grid, cells) = (dir.path(), &cells);
                    scope.spawn(move || {
                        finish(grid, cell, 10);
                        write_summary(grid, cells, 10).unwrap();
                    });
                }
            });
            assert_eq!(listed(dir.path()).len(), 8);
            let leftovers: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| siamese_files::is_temp_name(n))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
    }
}
