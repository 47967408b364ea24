//! A grid's results to look at: `runs/<experiment>/report.md` with PNGs in `report/`: the cells
//! ranked by the experiment's metric, each metric against each varied parameter, the best
//! cells' test-loss curves overlaid, and the best cell's embedding.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use siamese_charts::{
    ChartError, Frame, Series, lines_png, points_png, scatter_png, spans_a_decade,
};
use siamese_report::metrics::Points;
use siamese_report::metrics::projection::pca_2d;

use crate::cell_folder::{CellFolder, write_atomic};
use crate::cell_trainer::CellSummary;
use crate::cells::Cell;
use crate::manifest::{GridManifest, ManifestError};
use crate::ranking::{RankMetric, sorted_cells};
use crate::summary::finished_cells;

/// The report's page inside `runs/<experiment>/`, and the folder of its charts beside it.
pub const REPORT_FILE: &str = "report.md";
pub const REPORT_CHARTS_DIR: &str = "report";
/// Cells whose test-loss curves are overlaid.
const BEST_CURVES: usize = 5;
const CHART_SIZE: (u32, u32) = (640, 480);

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub page: PathBuf,
    pub charts: Vec<PathBuf>,
    /// Finished cells out of all.
    pub finished: usize,
    pub cells: usize,
}

/// Why no report was written (each names the folder or file).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{}: no finished cell yet, expected at least one with a done.toml", grid_dir.display())]
    NothingFinished { grid_dir: PathBuf },
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
}

/// Writes `grid_dir/report.md` and its charts from what the grid's folder holds (grid.toml,
/// each finished cell's done.toml, log.csv and features.csv); runs while a grid trains too.
pub fn write_report(grid_dir: &Path) -> Result<ReportFiles, ReportError> {
    let manifest = GridManifest::read(grid_dir)?;
    let cells = manifest.cells()?;
    let metric = manifest.rank_metric();
    let finished = finished_cells(grid_dir, &cells, manifest.iterations);
    if finished.is_empty() {
        return Err(ReportError::NothingFinished {
            grid_dir: grid_dir.to_path_buf(),
        });
    }
    let ranked: Vec<&Cell> = sorted_cells(&cells, &finished, &metric)
        .into_iter()
        .filter(|i| finished.contains_key(i))
        .map(|i| &cells[i])
        .collect();
    let charts_dir = grid_dir.join(REPORT_CHARTS_DIR);
    std::fs::create_dir_all(&charts_dir).map_err(|error| ReportError::Io {
        path: charts_dir.clone(),
        error,
    })?;
    let mut page = Page::new(&manifest, &metric, &ranked, &finished, cells.len());
    let mut charts = Vec::new();
    page.section("Each metric against each parameter");
    let axes = varied_numeric_axes(&cells);
    if axes.is_empty() {
        page.line("No numeric parameter varies across the cells.");
    }
    for axis in &axes {
        for m in RankMetric::all() {
            let points: Vec<(f64, f64)> = ranked
                .iter()
                .filter_map(|c| Some((axis_value(c, axis)?, m.value(&finished[&c.index])?)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let log_x = spans_a_decade(&points.iter().map(|p| p.0).collect::<Vec<_>>());
            let name = format!("{}-vs-{axis}.png", m.key);
            let title = format!("{} against {axis}", m.label);
            let x_desc = if log_x {
                format!("{axis} (log scale)")
            } else {
                axis.to_string()
            };
            let out = charts_dir.join(&name);
            points_png(&out, frame(&title, &x_desc, m.label), &points, log_x)?;
            page.image(&title, &name);
            charts.push(out);
        }
    }
    page.section(&format!(
        "Test loss of the best {} cells",
        ranked.len().min(BEST_CURVES)
    ));
    let curves: Vec<Series> = ranked
        .iter()
        .take(BEST_CURVES)
        .map(|c| Series {
            name: c.id.clone(),
            points: CellFolder::new(grid_dir.join(&c.id))
                .read_log()
                .iter()
                .filter_map(|r| Some((r.iter as f32, r.test_loss?)))
                .collect(),
        })
        .collect();
    if curves.iter().any(|c| !c.points.is_empty()) {
        let out = charts_dir.join("best-test-loss.png");
        lines_png(&out, frame("test loss", "iteration", "test loss"), &curves)?;
        page.image("test loss of the best cells", "best-test-loss.png");
        charts.push(out);
    } else {
        page.line("No test loss was logged.");
    }
    let best = ranked[0];
    page.section(&format!("Embedding of the best cell, {}", best.id));
    match embedding_points(&CellFolder::new(grid_dir.join(&best.id))) {
        Some((points, what)) => {
            let out = charts_dir.join("best-embedding.png");
            let title = format!("{} ({what})", best.id);
            let f = Frame {
                x_desc: if what == "2-D" {
                    "feature 0"
                } else {
                    "principal component 1"
                },
                y_desc: if what == "2-D" {
                    "feature 1"
                } else {
                    "principal component 2"
                },
                ..frame(&title, "", "")
            };
            scatter_png(&out, f, &points)?;
            page.image("embedding of the best cell", "best-embedding.png");
            charts.push(out);
        }
        None => page.line("Its features.csv is missing or has one column."),
    }
    let path = grid_dir.join(REPORT_FILE);
    write_atomic(&path, page.text.as_bytes()).map_err(|error| ReportError::Io {
        path: path.clone(),
        error,
    })?;
    Ok(ReportFiles {
        page: path,
        charts,
        finished: finished.len(),
        cells: cells.len(),
    })
}

fn frame<'a>(title: &'a str, x_desc: &'a str, y_desc: &'a str) -> Frame<'a> {
    Frame {
        size: CHART_SIZE,
        title,
        x_desc,
        y_desc,
    }
}

/// The grid axes with more than one value, all of them numbers (others are in the table only).
fn varied_numeric_axes(cells: &[Cell]) -> Vec<&'static str> {
    let Some(first) = cells.first() else {
        return Vec::new();
    };
    first
        .values
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| {
            let values: Option<Vec<f64>> = cells.iter().map(|c| axis_value(c, key)).collect();
            values.is_some_and(|v| v.iter().any(|x| *x != v[0]))
        })
        .collect()
}

fn axis_value(cell: &Cell, key: &str) -> Option<f64> {
    let (_, v) = cell.values.iter().find(|(k, _)| *k == key)?;
    v.parse().ok()
}

/// 2-D points, each with its digit.
type DigitPoints = Vec<([f32; 2], u8)>;

/// The cell's test embedding as 2-D points and what they are (`2-D`, `PCA of 8-D`).
fn embedding_points(folder: &CellFolder) -> Option<(DigitPoints, String)> {
    let features = folder.read_features()?;
    let points = Points::from_rows(&features)?;
    let (xy, what) = match points.dim {
        1 => return None,
        2 => (
            features.iter().map(|(f, _)| [f[0], f[1]]).collect(),
            "2-D".to_string(),
        ),
        dim => (pca_2d(&points), format!("PCA of {dim}-D")),
    };
    Some((xy.into_iter().zip(points.labels).collect(), what))
}

/// report.md as it is written.
struct Page {
    text: String,
}

impl Page {
    /// The title, what ranks the cells, and the table of finished cells, best first.
    fn new(
        manifest: &GridManifest,
        metric: &RankMetric,
        ranked: &[&Cell],
        finished: &BTreeMap<usize, CellSummary>,
        cells: usize,
    ) -> Page {
        let mut text = format!("# {}: report\n\n", manifest.experiment);
        let better = match metric.direction {
            siamese_report::metrics::Direction::HigherIsBetter => "higher is better",
            siamese_report::metrics::Direction::LowerIsBetter => "lower is better",
        };
        let _ = writeln!(
            text,
            "{} of {cells} cells finished ({} iterations each), ranked by {} ({better}).\n",
            finished.len(),
            manifest.iterations,
            metric.label
        );
        let keys: Vec<&str> = ranked[0].values.iter().map(|(k, _)| *k).collect();
        let shown: Vec<RankMetric> = std::iter::once(*metric)
            .chain(
                RankMetric::all()
                    .into_iter()
                    .filter(|m| m.key != metric.key),
            )
            .filter(|m| {
                ranked
                    .iter()
                    .any(|c| m.value(&finished[&c.index]).is_some())
            })
            .collect();
        let header: Vec<String> = ["rank", "cell"]
            .iter()
            .map(ToString::to_string)
            .chain(keys.iter().map(ToString::to_string))
            .chain(shown.iter().map(|m| m.label.to_string()))
            .collect();
        let _ = writeln!(text, "| {} |", header.join(" | "));
        let _ = writeln!(text, "|{}", " --- |".repeat(header.len()));
        for (rank, cell) in ranked.iter().enumerate() {
            let summary = &finished[&cell.index];
            let row: Vec<String> = [(rank + 1).to_string(), cell.id.clone()]
                .into_iter()
                .chain(cell.values.iter().map(|(_, v)| v.clone()))
                .chain(shown.iter().map(|m| {
                    m.value(summary)
                        .map_or("–".to_string(), |v| format!("{v:.4}"))
                }))
                .collect();
            let _ = writeln!(text, "| {} |", row.join(" | "));
        }
        Page { text }
    }

    fn section(&mut self, title: &str) {
        let _ = write!(self.text, "\n## {title}\n\n");
    }

    fn line(&mut self, line: &str) {
        let _ = writeln!(self.text, "{line}\n");
    }

    fn image(&mut self, alt: &str, name: &str) {
        let _ = writeln!(self.text, "![{alt}]({REPORT_CHARTS_DIR}/{name})\n");
    }
}
