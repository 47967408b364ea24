//! `runs/<experiment>/summary.csv`, rebuilt from every finished cell's done.toml, one runner
//! at a time, and renamed into place.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use siamese_report::metrics::EmbeddingMetrics;

use crate::cell_folder::{CellFolder, PrunedCell, write_atomic};
use crate::cell_trainer::CellSummary;
use crate::cells::Cell;
use crate::claim::{self, SUMMARY_LOCK_FILE};
use crate::ranking::{ParamGroup, RankMetric, aggregate, group_by_params};

/// Name of the grid's results table inside `runs/<experiment>/`.
pub const SUMMARY_FILE: &str = "summary.csv";
/// Beside it when cells repeat a combination over seeds: mean and std per combination.
pub const BY_PARAMS_FILE: &str = "summary_by_params.csv";

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

/// The cells of the grid in `grid_dir` that early stopping pruned.
pub fn pruned_cells(grid_dir: &Path, cells: &[Cell]) -> BTreeMap<usize, PrunedCell> {
    cells
        .iter()
        .filter_map(|cell| {
            Some((
                cell.index,
                CellFolder::new(grid_dir.join(&cell.id)).pruned()?,
            ))
        })
        .collect()
}

/// Rewrites `grid_dir/summary.csv` from the finished cells on disk (and, when cells repeat a
/// combination over seeds, [`BY_PARAMS_FILE`]); returns the summary's path.
///
/// Runners sharing the folder (processes, machines, Slurm tasks) take turns through
/// [`SUMMARY_LOCK_FILE`]. Each writes its done.toml before its turn, so the last writer reads
/// every finished cell and the table on disk is always whole and, at the end, complete.
pub fn write_summary(grid_dir: &Path, cells: &[Cell], iterations: u32) -> io::Result<PathBuf> {
    let path = grid_dir.join(SUMMARY_FILE);
    let _turn = claim::lock(grid_dir, SUMMARY_LOCK_FILE)?;
    let finished = finished_cells(grid_dir, cells, iterations);
    let pruned = pruned_cells(grid_dir, cells);
    write_atomic(&path, &summary_csv(cells, &finished, &pruned)?)?;
    let groups = group_by_params(cells);
    if groups.iter().any(|g| g.cells.len() > 1) {
        write_atomic(
            &grid_dir.join(BY_PARAMS_FILE),
            &by_params_csv(&groups, &finished)?,
        )?;
    }
    Ok(path)
}

/// The results of a finished cell, in summary.csv's order after the parameters.
fn result_columns() -> Vec<&'static str> {
    let mut columns = vec!["iterations", "train_loss", "test_loss"];
    columns.extend(EmbeddingMetrics::KEYS);
    columns.extend(["points", "wall_seconds", "status"]);
    columns
}

/// summary.csv: cell id, the grid's parameters (and seed), then every result (a metric a
/// cell did not measure, k-NN in an open-set grid, is left empty), then `finished` or
/// `pruned`. A pruned cell has its iterations, the test loss it was pruned with, its time.
pub fn summary_csv(
    cells: &[Cell],
    summaries: &BTreeMap<usize, CellSummary>,
    pruned: &BTreeMap<usize, PrunedCell>,
) -> io::Result<Vec<u8>> {
    let mut keys: Vec<&str> = cells
        .first()
        .map(|c| c.values.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let with_seed = !keys.contains(&"seed");
    if with_seed {
        keys.push("seed");
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let header: Vec<&str> = std::iter::once("cell")
        .chain(keys.iter().copied())
        .chain(result_columns())
        .collect();
    w.write_record(&header)?;
    for cell in cells {
        let mut record: Vec<String> = vec![cell.id.clone()];
        record.extend(cell.values.iter().map(|(_, v)| v.clone()));
        if with_seed {
            record.push(cell.params.seed.to_string());
        }
        if let Some(s) = summaries.get(&cell.index) {
            record.extend(finished_columns(s));
        } else if let Some(p) = pruned.get(&cell.index) {
            record.extend(pruned_columns(p));
        } else {
            continue;
        }
        w.write_record(&record)?;
    }
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

/// A finished cell's results, in [`result_columns`] order.
fn finished_columns(s: &CellSummary) -> Vec<String> {
    let mut record = Vec::new();
    record.extend([
        s.iterations.to_string(),
        s.train_loss.to_string(),
        s.test_loss.to_string(),
    ]);
    record.extend(
        EmbeddingMetrics::KEYS
            .iter()
            .map(|k| s.metrics.get(k).map_or(String::new(), |v| v.to_string())),
    );
    record.extend([
        s.metrics.points.to_string(),
        format!("{:.3}", s.wall_seconds),
        "finished".to_string(),
    ]);
    record
}

/// A pruned cell's columns: its iterations, its test loss, its time; the rest left empty.
fn pruned_columns(p: &PrunedCell) -> Vec<String> {
    let test_loss = if p.metric == "test_loss" {
        p.value.to_string()
    } else {
        String::new()
    };
    let mut record = vec![p.iterations.to_string(), String::new(), test_loss];
    record.extend(EmbeddingMetrics::KEYS.iter().map(|_| String::new()));
    record.extend([
        String::new(),
        format!("{:.3}", p.wall_seconds),
        crate::cell_folder::PRUNED.to_string(),
    ]);
    record
}

/// [`BY_PARAMS_FILE`]: one row per parameter combination (the cells that differ only by
/// seed), with how many of them finished and each result's mean and standard deviation.
pub fn by_params_csv(
    groups: &[ParamGroup],
    summaries: &BTreeMap<usize, CellSummary>,
) -> io::Result<Vec<u8>> {
    let keys: Vec<&str> = groups
        .first()
        .map(|g| g.params.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let metrics = RankMetric::all();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    header.extend(["cells".into(), "finished".into()]);
    for m in &metrics {
        header.extend([format!("{}_mean", m.key), format!("{}_std", m.key)]);
    }
    w.write_record(&header)?;
    for group in groups {
        let finished = group
            .cells
            .iter()
            .filter(|c| summaries.contains_key(c))
            .count();
        if finished == 0 {
            continue;
        }
        let mut record: Vec<String> = group.params.iter().map(|(_, v)| v.clone()).collect();
        record.extend([group.cells.len().to_string(), finished.to_string()]);
        for m in &metrics {
            match aggregate(group, summaries, m) {
                Some(a) => record.extend([a.mean.to_string(), a.std.to_string()]),
                None => record.extend([String::new(), String::new()]),
            }
        }
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
            wall_seconds: index as f64,
            metrics: siamese_testkit::embedding_metrics(0.9, 0.6 + index as f64 / 100.0, 0.8),
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
            "cell,margin,seed,iterations,train_loss,test_loss,precision_at_1,r_precision,map_at_r,\
             nmi,ami,roc_auc,eer,tar_at_far_0_001,verification_accuracy_mean,\
             verification_accuracy_std,verification_threshold,pair_accuracy_tuned_on_test,\
             knn_accuracy,points,wall_seconds,status"
        );
        assert!(
            !dir.path().join(BY_PARAMS_FILE).exists(),
            "no repeats, no second table"
        );
    }

    /// Two seeds of each margin: one row per margin, the mean and std over its seeds.
    #[test]
    fn repeats_are_aggregated_per_parameter_combination() {
        let dir = tempfile::tempdir().unwrap();
        let cells: Vec<Cell> = (0..4)
            .map(|index| Cell {
                index,
                id: format!("{index:03}-margin_{}-seed_{}", index / 2, index % 2),
                values: vec![
                    ("margin", (index / 2).to_string()),
                    ("seed", (index % 2).to_string()),
                ],
                params: Default::default(),
            })
            .collect();
        for cell in &cells[..3] {
            finish(dir.path(), cell, 10);
        }
        write_summary(dir.path(), &cells, 10).unwrap();
        let mut table = csv::Reader::from_path(dir.path().join(BY_PARAMS_FILE)).unwrap();
        let header = table.headers().unwrap().clone();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = table.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (&rows[0][col("margin")], &rows[0][col("finished")]),
            ("0", "2")
        );
        let mean: f64 = rows[0][col("map_at_r_mean")].parse().unwrap();
        let std: f64 = rows[0][col("map_at_r_std")].parse().unwrap();
        assert!(
            (mean - 0.605).abs() < 1e-12 && (std - 0.005).abs() < 1e-12,
            "{mean} {std}"
        );
        assert_eq!(
            (&rows[1][col("cells")], &rows[1][col("finished")]),
            ("2", "1")
        );
        assert_eq!(&rows[1][col("map_at_r_std")], "0");
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
