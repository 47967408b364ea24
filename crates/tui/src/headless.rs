//! `--headless`: plain lines instead of the screen, for scripts, CI, ssh sessions and Slurm
//! task logs: one line per cell event (started, test result, finished, failed, skipped,
//! stopped) for a local grid run, a `run-cell` task and a `--watch`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use siamese_grid::cell_progress::{host_name, slurm_job, unix_now};
use siamese_grid::cell_trainer::{CellEvent, CellSummary, CellTrainer, Control};
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_grid::follow::{POLL_INTERVAL, WatchFeed};
use siamese_grid::ranking::{RankMetric, best_group, group_by_params};
use siamese_grid::run_cell::{CellTask, TaskUpdate, run_cell};
use siamese_grid::runner::{GridReport, RunOptions, run_grid};
use siamese_report::metrics::EmbeddingMetrics;

/// The first line of a run: what runs, where, and on how many workers.
pub fn start_line(experiment: &Experiment, cells: &[Cell], options: &RunOptions) -> String {
    format!(
        "{}: {} of {} iterations, {} × {} → {}",
        experiment.name,
        plural(cells.len(), "cell"),
        experiment.iterations,
        plural(options.workers, "worker"),
        plural(options.threads, "thread"),
        options.out.join(&experiment.name).display()
    )
}

/// The last line of a run: what happened and where the summary is.
pub fn end_line(report: &GridReport) -> String {
    let elsewhere = match report.elsewhere {
        0 => String::new(),
        n => format!(", {n} left to other runners"),
    };
    let pruned = match report.pruned {
        0 => String::new(),
        n => format!(", {n} pruned"),
    };
    format!(
        "done: {} finished, {} skipped (finished earlier), {} failed, {} stopped{elsewhere}{pruned}; summary in {}",
        report.finished,
        report.skipped,
        report.failed,
        report.stopped,
        report.summary.display()
    )
}

/// The first line of a `run-cell` task: which cell, how, on which host (and Slurm job).
pub fn task_line(task: &CellTask<'_>) -> String {
    let job = slurm_job()
        .map(|j| format!(" (Slurm job {j})"))
        .unwrap_or_default();
    format!(
        "{}: cell {} of {} ({}), {} iterations, {} on {}{job} → {}",
        task.experiment.name,
        task.cell.index,
        task.cells.len(),
        task.cell.id,
        task.experiment.iterations,
        plural(task.threads, "thread"),
        host_name(),
        task.dir().display()
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

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
            "finished in {:.1} s: train loss {:.6}, test loss {:.6}, {}",
            s.wall_seconds,
            s.train_loss,
            s.test_loss,
            metrics_text(&s.metrics)
        ),
        CellEvent::Failed { error, .. } => format!("FAILED: {error} (retried on the next run)"),
        CellEvent::Skipped { summary: s, .. } => {
            format!("already finished ({}); skipped", metrics_text(&s.metrics))
        }
        CellEvent::Stopped { .. } => {
            "stopped; resumes from its last snapshot on the next run".to_string()
        }
        CellEvent::ClaimedElsewhere { .. } => {
            "being trained by another runner (it holds the cell's claim); left to it".to_string()
        }
        CellEvent::Pruned { at, reason, .. } => format!("pruned at iteration {at} ({reason})"),
        CellEvent::Train { .. } | CellEvent::Embedding { .. } | CellEvent::Snapshot { .. } => {
            return None;
        }
    };
    Some(format!("[{id}] {text}"))
}

/// The headline metrics of a cell: P@1, MAP@R and the held-out verification accuracy.
fn metrics_text(m: &EmbeddingMetrics) -> String {
    format!(
        "P@1 {:.4}, MAP@R {:.4}, verification accuracy {:.4} ± {:.4}",
        m.precision_at_1, m.map_at_r, m.verification_accuracy_mean, m.verification_accuracy_std
    )
}

/// The best parameter combination among the finished cells by the experiment's metric:
/// `best by MAP@R: margin=2 (0.612 ± 0.010 over 3 cells)`; `None` before any cell finished.
pub fn best_line(
    cells: &[Cell],
    summaries: &BTreeMap<usize, CellSummary>,
    metric: &RankMetric,
) -> Option<String> {
    let groups = group_by_params(cells);
    let (group, agg) = best_group(&groups, summaries, metric)?;
    let cells = if agg.n == 1 { "cell" } else { "cells" };
    Some(format!(
        "best by {}: {} ({} over {} {cells})",
        metric.label,
        group.describe(),
        agg.text(),
        agg.n
    ))
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
    writeln!(out, "{}", start_line(experiment, cells, options))?;
    writeln!(out, "{}", experiment.data.note)?;
    let mut summaries = BTreeMap::new();
    let (tx, rx) = mpsc::channel();
    let report = std::thread::scope(|scope| -> anyhow::Result<GridReport> {
        let runner = scope.spawn(|| run_grid(experiment, cells, options, trainer, control, tx));
        for event in rx {
            if let CellEvent::Finished { cell, summary } | CellEvent::Skipped { cell, summary } =
                &event
            {
                summaries.insert(*cell, summary.clone());
            }
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
    if let Some(line) = best_line(cells, &summaries, &experiment.metric) {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "{}", end_line(&report))?;
    Ok(report)
}

/// `run-cell`: trains the task's cell, writing its first line, one line per event and a
/// closing line to `out`, like `--headless`.
pub fn run_cell_headless(
    task: &CellTask<'_>,
    trainer: &dyn CellTrainer,
    control: &Control,
    out: &mut dyn Write,
) -> anyhow::Result<GridReport> {
    writeln!(out, "{}", task_line(task))?;
    writeln!(out, "{}", task.experiment.data.note)?;
    let mut written: io::Result<()> = Ok(());
    let report = run_cell(task, trainer, control, &mut |update| {
        let line = match update {
            TaskUpdate::Event(event) => event_line(task.cells, event),
            TaskUpdate::ProgressNotWritten { dir, error } => Some(format!(
                "warning: {}: progress files not written: {error}",
                dir.display()
            )),
        };
        if let (Some(line), Ok(())) = (line, &written) {
            written = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    })
    .context("grid runner")?;
    written?;
    writeln!(out, "{}", end_line(&report))?;
    Ok(report)
}

/// `--watch` without a screen: one line per cell event until every cell is finished or
/// failed; returns whether they all finished.
pub fn watch_headless(grid_dir: &Path, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut feed = WatchFeed::open(grid_dir)?;
    writeln!(
        out,
        "{}: {}",
        feed.experiment(),
        crate::watch::watch_note(grid_dir)
    )?;
    loop {
        for (event, _) in feed.poll(Instant::now(), unix_now()) {
            if let Some(line) = event_line(feed.cells(), &event) {
                writeln!(out, "{line}")?;
            }
        }
        out.flush()?;
        if feed.all_over() {
            return Ok(feed.all_done());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
