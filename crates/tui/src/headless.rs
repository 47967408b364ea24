//! `--headless`: runs the grid without a screen and prints one line per cell event (started,
//! test result, finished, failed, skipped, stopped) for scripts, CI and ssh sessions.

use std::io::Write;
use std::sync::mpsc;

use anyhow::Context;

use crate::cell_trainer::{CellEvent, CellTrainer, Control};
use crate::experiment::Experiment;
use crate::grid::Cell;
use crate::runner::{GridReport, RunOptions, run_grid};

/// The line printed for `event`, or `None` for events too frequent to print (training
/// iterations, embeddings, snapshots).
pub fn event_line(cells: &[Cell], event: &CellEvent) -> Option<String> {
    let id = cells.get(event.cell()).map_or("?", |c| c.id.as_str());
    let text = match event {
        CellEvent::Started {
            total_iters,
            resumed_from: None,
            ..
        } => format!("started: {total_iters} iterations"),
        CellEvent::Started {
            total_iters,
            resumed_from: Some(from),
            ..
        } => {
            format!("resumed at iteration {from} of {total_iters}")
        }
        CellEvent::TempFilesRemoved { paths, .. } => {
            let names: Vec<_> = paths
                .iter()
                .map(|p| p.file_name().unwrap_or_default().to_string_lossy())
                .collect();
            format!(
                "removed {} temporary file{} cut short when an earlier run was killed: {}",
                paths.len(),
                if paths.len() == 1 { "" } else { "s" },
                names.join(", ")
            )
        }
        CellEvent::Test {
            iter,
            loss,
            outputs,
            ..
        } => {
            let mut line = format!("test at iteration {iter}: loss {loss:.6}");
            for (name, value) in outputs {
                line.push_str(&format!(", {name} {value:.6}"));
            }
            line
        }
        CellEvent::Finished { summary: s, .. } => format!(
            "finished in {:.1} s: train loss {:.6}, test loss {:.6}, k-NN accuracy {:.4}, pair accuracy {:.4}",
            s.wall_seconds, s.train_loss, s.test_loss, s.knn_accuracy, s.pair_accuracy
        ),
        CellEvent::Failed { error, .. } => format!("FAILED: {error} (retried on the next run)"),
        CellEvent::Skipped { summary: s, .. } => format!(
            "already finished (k-NN accuracy {:.4}, pair accuracy {:.4}); skipped",
            s.knn_accuracy, s.pair_accuracy
        ),
        CellEvent::Stopped { .. } => {
            "stopped; resumes from its last snapshot on the next run".to_string()
        }
        CellEvent::Train { .. } | CellEvent::Embedding { .. } | CellEvent::Snapshot { .. } => {
            return None;
        }
    };
    Some(format!("[{id}] {text}"))
}

/// Runs the grid, writing a header, one line per event and a closing line to `out`.
pub fn run_headless(
    experiment: &Experiment,
    cells: &[Cell],
    options: &RunOptions,
    trainer: &dyn CellTrainer,
    control: &Control,
    out: &mut dyn Write,
) -> anyhow::Result<GridReport> {
    writeln!(out, "{}", crate::start_line(experiment, cells, options))?;
    writeln!(out, "{}", experiment.data.note)?;
    let (tx, rx) = mpsc::channel();
    let report = std::thread::scope(|scope| -> anyhow::Result<GridReport> {
        let runner = scope.spawn(|| run_grid(experiment, cells, options, trainer, control, tx));
        for event in rx {
            if let Some(line) = event_line(cells, &event) {
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        }
        let report = runner
            .join()
            .map_err(|_| anyhow::anyhow!("the grid runner panicked"))?;
        report.context("grid runner")
    })?;
    writeln!(out, "{}", crate::end_line(&report))?;
    Ok(report)
}
