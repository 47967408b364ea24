//! Grid runs end to end with the scripted test trainer: the events and the files every cell
//! and the grid write, skipping finished cells, resuming a killed run, `--fresh`, and failures.

mod support;

use std::fs;
use std::path::Path;
use std::sync::mpsc;

use siamese_grid::cell_folder::CellFolder;
use siamese_grid::cell_trainer::{CellEvent, Control};
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_grid::runner::{GridReport, RunError, RunOptions, run_grid};
use support::{ScriptedTrainer, TEST_POINTS};

const TINY: &str = "name = \"tiny\"\niterations = 12\ntest_interval = 4\nsnapshot_interval = 5\n[grid]\nmargin = [1, 2]\n";

struct Run {
    report: GridReport,
    events: Vec<CellEvent>,
}

fn run(dir: &Path, trainer: &ScriptedTrainer, fresh: bool) -> Run {
    run_experiment(dir, TINY, trainer, fresh)
}

fn run_experiment(dir: &Path, body: &str, trainer: &ScriptedTrainer, fresh: bool) -> Run {
    try_run(dir, body, trainer, fresh).unwrap()
}

fn try_run(
    dir: &Path,
    body: &str,
    trainer: &ScriptedTrainer,
    fresh: bool,
) -> Result<Run, RunError> {
    let file = support::experiment_file(dir, "tiny", body);
    let experiment = Experiment::load(&file).unwrap();
    let cells = Cell::expand(&experiment);
    let options = RunOptions {
        out: dir.join("runs"),
        workers: 1,
        threads: 1,
        fresh,
    };
    let (tx, rx) = mpsc::channel();
    let report = run_grid(&experiment, &cells, &options, trainer, &Control::new(), tx)?;
    Ok(Run {
        report,
        events: rx.into_iter().collect(),
    })
}

/// The events a reader follows a run by (no iterations, embeddings or snapshots), in words.
fn outline(events: &[CellEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| {
            Some(match e {
                CellEvent::Started {
                    cell, resumed_from, ..
                } => format!("{cell} started from {resumed_from:?}"),
                CellEvent::Test { cell, iter, .. } => format!("{cell} test {iter}"),
                CellEvent::Finished { cell, .. } => format!("{cell} finished"),
                CellEvent::Failed { cell, error } => format!("{cell} failed: {error}"),
                CellEvent::Skipped { cell, .. } => format!("{cell} skipped"),
                CellEvent::Stopped { cell } => format!("{cell} stopped"),
                CellEvent::ClaimedElsewhere { cell } => format!("{cell} elsewhere"),
                CellEvent::Pruned { cell, at, .. } => format!("{cell} pruned at {at}"),
                _ => return None,
            })
        })
        .collect()
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn summary_rows(dir: &Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(dir.join("runs/tiny/summary.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "cell",
            "margin",
            "seed",
            "iterations",
            "train_loss",
            "test_loss",
            "precision_at_1",
            "r_precision",
            "map_at_r",
            "nmi",
            "ami",
            "roc_auc",
            "eer",
            "tar_at_far_0_001",
            "verification_accuracy_mean",
            "verification_accuracy_std",
            "verification_threshold",
            "pair_accuracy_tuned_on_test",
            "knn_accuracy",
            "points",
            "wall_seconds",
            "status"
        ]
    );
    reader.records().map(Result::unwrap).collect()
}

/// The position of column `name` in summary.csv (as [`summary_rows`] checks the header).
fn summary_column(name: &str) -> usize {
    let header = [
        "cell",
        "margin",
        "seed",
        "iterations",
        "train_loss",
        "test_loss",
    ];
    header.len()
        + siamese_report::metrics::EmbeddingMetrics::KEYS
            .iter()
            .chain(&["points", "wall_seconds", "status"])
            .position(|k| *k == name)
            .unwrap_or_else(|| panic!("no column {name}"))
}

/// `(iter, has a train loss, has a test loss)` of every log.csv row (`siamese train`'s
/// columns: read with siamese-report's reader).
fn log_rows(cell_dir: &Path) -> Vec<(i32, bool, bool)> {
    let header = read(cell_dir.join("log.csv"));
    assert_eq!(
        header.lines().next(),
        Some("iter,lr,train_loss,test_loss,elapsed_s")
    );
    siamese_report::read_training_log(&cell_dir.join("log.csv"))
        .unwrap()
        .iter()
        .map(|r| (r.iter, r.train_loss.is_some(), r.test_loss.is_some()))
        .collect()
}

/// 12 iterations tested every 4: a row for each training loss (iterations 0 to 11, Caffe's
/// numbers) and for each test after 4, 8 and 12 iterations, the test first.
fn expected_log() -> Vec<(i32, bool, bool)> {
    expected_rows(12, 4)
}

/// The rows of a cell log of `iterations` tested every `interval`.
fn expected_rows(iterations: i32, interval: i32) -> Vec<(i32, bool, bool)> {
    let mut rows = Vec::new();
    for i in 0..=iterations {
        if i > 0 && i % interval == 0 {
            rows.push((i, false, true));
        }
        if i < iterations {
            rows.push((i, true, false));
        }
    }
    rows
}

#[test]
fn headless_run_writes_every_cell_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = ScriptedTrainer::default();
    let Run { report, events } = run(dir.path(), &trainer, false);
    assert_eq!(
        (
            report.finished,
            report.skipped,
            report.failed,
            report.stopped
        ),
        (2, 0, 0, 0)
    );
    assert!(report.summary.ends_with("runs/tiny/summary.csv"));
    let each = |cell: usize| {
        [
            format!("{cell} started from None"),
            format!("{cell} test 4"),
            format!("{cell} test 8"),
            format!("{cell} test 12"),
            format!("{cell} finished"),
        ]
    };
    assert_eq!(outline(&events), [each(0), each(1)].concat());
    let trains = |cell| {
        events
            .iter()
            .filter(|e| matches!(e, CellEvent::Train { cell: c, .. } if *c == cell))
            .count()
    };
    assert_eq!((trains(0), trains(1)), (12, 12));
    match events.iter().find(|e| matches!(e, CellEvent::Test { .. })) {
        Some(CellEvent::Test { loss, outputs, .. }) => {
            assert!((loss - 0.306656).abs() < 1e-6, "{loss}");
            assert_eq!(outputs, &[("loss".to_string(), *loss)]);
        }
        other => panic!("{other:?}"),
    }
    match events
        .iter()
        .find(|e| matches!(e, CellEvent::Finished { .. }))
    {
        Some(CellEvent::Finished { summary, .. }) => {
            let m = &summary.metrics;
            assert_eq!((m.knn_accuracy, m.map_at_r, m.nmi), (Some(1.0), 1.0, 1.0));
            assert_eq!(m.verification_accuracy_mean, 1.0);
        }
        other => panic!("{other:?}"),
    }

    let rows = summary_rows(dir.path());
    assert_eq!(rows.len(), 2);
    for (row, (id, margin)) in rows
        .iter()
        .zip([("000-margin_1", "1"), ("001-margin_2", "2")])
    {
        assert_eq!(
            (&row[0], &row[1], &row[2], &row[3]),
            (id, margin, "1", "12")
        );
        let num = |i: usize| row[i].parse::<f64>().unwrap();
        // Mean of the 12 scripted train losses: margin × 0.5 / (1 + 0.2 i) (+ seed term 1e-3).
        let m: f64 = margin.parse().unwrap();
        let mean = (1..=12)
            .map(|i| (m * 0.5 / (1.0 + 0.2 * f64::from(i))) as f32 as f64 + 1e-3)
            .sum::<f64>()
            / 12.0;
        assert!(
            (num(4) - mean).abs() < 1e-5,
            "train loss {} vs {mean}",
            num(4)
        );
        assert!(
            (num(5) - (m * 0.5 / 3.4 + 1e-3) * 1.1).abs() < 1e-5,
            "test loss {}",
            num(5)
        );
        let col = |name: &str| num(summary_column(name));
        for perfect in [
            "precision_at_1",
            "map_at_r",
            "nmi",
            "roc_auc",
            "knn_accuracy",
        ] {
            assert_eq!(col(perfect), 1.0, "separated clusters: perfect {perfect}");
        }
        assert_eq!(col("verification_accuracy_mean"), 1.0);
        assert_eq!(col("points"), TEST_POINTS as f64);
        assert!(col("verification_threshold") > 0.0 && col("wall_seconds") >= 0.0);

        let cell = dir.path().join("runs/tiny").join(id);
        let params: toml::Table = toml::from_str(&read(cell.join("params.toml"))).unwrap();
        assert_eq!(params["cell"].as_str(), Some(id));
        assert_eq!(params["iterations"].as_integer(), Some(12));
        assert_eq!(params["params"]["margin"].as_float(), Some(m));
        assert_eq!(log_rows(&cell), expected_log());
        assert_eq!(read(cell.join("snap_iter_12.caffemodel")), "final weights");
        let features = read(cell.join("features.csv"));
        assert_eq!(features.lines().next(), Some("index,label,f0,f1"));
        assert_eq!(features.lines().count(), 1 + TEST_POINTS);
        assert_eq!(
            CellFolder::new(cell.clone()).read_features(),
            Some(support::clusters(TEST_POINTS, 0.5))
        );
        let done: toml::Table = toml::from_str(&read(cell.join("done.toml"))).unwrap();
        assert_eq!(done["metrics"]["knn_accuracy"].as_float(), Some(1.0));
        assert!(cell.join("snap_iter_10.solverstate").is_file());
    }
    assert_eq!(
        trainer.calls(),
        [
            ("000-margin_1".to_string(), None),
            ("001-margin_2".to_string(), None)
        ]
    );
}

#[test]
fn a_killed_run_resumes_from_its_snapshot_and_skips_finished_cells() {
    let dir = tempfile::tempdir().unwrap();
    // First run: cell 0 finishes, cell 1 dies at iteration 7 (last snapshot at 5).
    let killer = ScriptedTrainer {
        die_at: Some((1, 7)),
        ..Default::default()
    };
    let first = run(dir.path(), &killer, false);
    assert_eq!((first.report.finished, first.report.stopped), (1, 1));
    assert_eq!(outline(&first.events).last().unwrap(), "1 stopped");
    let cell1 = dir.path().join("runs/tiny/001-margin_2");
    assert!(!cell1.join("done.toml").exists());
    assert_eq!(
        summary_rows(dir.path()).len(),
        1,
        "only the finished cell is in the summary"
    );
    assert_eq!(
        log_rows(&cell1).last(),
        Some(&(6, true, false)),
        "the 7th iteration is row 6"
    );

    // Second run: cell 0 is skipped, cell 1 resumes at 5 and its log drops rows 6 and 7.
    let resumer = ScriptedTrainer::default();
    let second = run(dir.path(), &resumer, false);
    assert_eq!(resumer.calls(), [("001-margin_2".to_string(), Some(5))]);
    assert_eq!((second.report.finished, second.report.skipped), (1, 1));
    assert_eq!(
        outline(&second.events)[..2],
        ["0 skipped", "1 started from Some(5)"]
    );
    assert_eq!(
        log_rows(&cell1),
        expected_log(),
        "no iteration twice, none missing"
    );
    assert_eq!(summary_rows(dir.path()).len(), 2);

    // Third run: everything is finished, nothing trains.
    let idle = ScriptedTrainer::default();
    assert_eq!(run(dir.path(), &idle, false).report.skipped, 2);
    assert!(idle.calls().is_empty());

    // --fresh: earlier results are deleted and every cell runs from scratch.
    fs::write(cell1.join("stale.txt"), "from the earlier run").unwrap();
    let fresh = ScriptedTrainer::default();
    let again = run(dir.path(), &fresh, true);
    assert_eq!(again.report.finished, 2);
    assert_eq!(
        fresh.calls(),
        [
            ("000-margin_1".to_string(), None),
            ("001-margin_2".to_string(), None)
        ]
    );
    assert!(!cell1.join("stale.txt").exists());
    assert_eq!(log_rows(&cell1), expected_log());
}

#[test]
fn failing_and_panicking_cells_are_reported_and_retried_later() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = ScriptedTrainer {
        fail_cell: Some(0),
        panic_cell: Some(1),
        ..Default::default()
    };
    let Run { report, events } = run(dir.path(), &trainer, false);
    assert_eq!((report.finished, report.failed), (0, 2));
    assert_eq!(
        outline(&events),
        [
            "0 started from None",
            "0 failed: scripted failure: loss is NaN",
            "1 started from None",
            "1 failed: trainer panicked: scripted panic in cell 1"
        ]
    );
    assert!(summary_rows(dir.path()).is_empty());

    let retry = ScriptedTrainer::default();
    assert_eq!(run(dir.path(), &retry, false).report.finished, 2);
    assert_eq!(retry.calls().len(), 2);
}

/// Runners sharing a runs folder split the cells through their claims: started at once, each
/// cell is trained by exactly one of them, and summary.csv lists every cell.
#[test]
fn runners_sharing_a_folder_train_each_cell_once() {
    let dir = tempfile::tempdir().unwrap();
    let six = TINY.replace("margin = [1, 2]", "margin = [1, 2, 3, 4, 5, 6]");
    let trainer = ScriptedTrainer {
        pause: std::time::Duration::from_millis(5),
        ..Default::default()
    };
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let runners: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| run_experiment(dir.path(), &six, &trainer, false)))
            .collect();
        runners.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut trained: Vec<String> = trainer.calls().into_iter().map(|(id, _)| id).collect();
    trained.sort();
    let ids: Vec<String> = (0..6).map(|i| format!("{i:03}-margin_{}", i + 1)).collect();
    assert_eq!(trained, ids, "each cell trained exactly once");
    assert_eq!(runs.iter().map(|r| r.report.finished).sum::<usize>(), 6);
    assert!(
        runs.iter().filter(|r| r.report.finished > 0).count() > 1,
        "the runners did not overlap: {:?}",
        runs.iter().map(|r| &r.report).collect::<Vec<_>>()
    );
    for run in &runs {
        let r = &run.report;
        assert_eq!(r.finished + r.skipped + r.elsewhere, 6, "{r:?}");
        assert_eq!(r.failed, 0);
    }
    assert_eq!(
        summary_rows(dir.path()).len(),
        6,
        "summary.csv lists every cell"
    );
    for row in summary_rows(dir.path()) {
        assert_eq!(&row[3], "12", "cell {} finished", &row[0]);
    }
}

/// A runner whose cell's claim is held elsewhere leaves the cell, says so and ends.
#[test]
fn a_claimed_cell_is_left_to_its_runner() {
    let dir = tempfile::tempdir().unwrap();
    let cell = dir.path().join("runs/tiny/000-margin_1");
    let held = siamese_grid::claim::try_claim(&cell).unwrap().unwrap();
    let trainer = ScriptedTrainer::default();
    let first = run(dir.path(), &trainer, false);
    assert_eq!(first.report.elsewhere, 1);
    assert_eq!(first.report.finished, 1);
    assert!(outline(&first.events).contains(&"0 elsewhere".to_string()));
    assert_eq!(trainer.calls().len(), 1);
    match try_run(dir.path(), TINY, &trainer, true) {
        Err(e @ RunError::ClaimedElsewhere { .. }) => {
            assert!(
                e.to_string().contains("000-margin_1: another runner"),
                "{e}"
            )
        }
        other => panic!("--fresh with a claimed cell: {:?}", other.map(|r| r.report)),
    }
    let finished = dir.path().join("runs/tiny/001-margin_2/done.toml");
    assert!(
        finished.is_file(),
        "--fresh deleted results before it failed"
    );
    drop(held);
    let second = run(dir.path(), &trainer, false);
    assert_eq!((second.report.finished, second.report.skipped), (1, 1));
}

/// 12 iterations tested every 2, ranked by test loss; the scripted loss grows with the margin,
/// so margin 1 is the best cell and 4 the worst.
fn scheduled(schedule: &str) -> String {
    format!(
        "name = \"tiny\"\niterations = 12\ntest_interval = 2\nmetric = \"test_loss\"\n\
         [schedule]\n{schedule}[grid]\nmargin = [2, 1, 3, 4]\n"
    )
}

/// ASHA at rungs 2, 4 and 8 (eta 2), one runner, cells in grid order: margin 2 arrives first
/// and goes on; margin 1 is the best of two; margins 3 and 4 are outside the top half.
#[test]
fn asha_prunes_cells_outside_the_top_of_a_rung_and_reruns_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let body = scheduled("kind = \"asha\"\nmin_iterations = 2\neta = 2\n");
    let trainer = ScriptedTrainer::default();
    let first = run_experiment(dir.path(), &body, &trainer, false);
    let ends: Vec<String> = outline(&first.events)
        .into_iter()
        .filter(|l| l.contains("finished") || l.contains("pruned"))
        .collect();
    assert_eq!(
        ends,
        ["0 finished", "1 finished", "2 pruned at 2", "3 pruned at 2"]
    );
    assert_eq!((first.report.finished, first.report.pruned), (2, 2));
    let trains = first
        .events
        .iter()
        .filter(|e| matches!(e, CellEvent::Train { .. }))
        .count();
    assert_eq!(trains, 12 + 12 + 2 + 2, "pruned cells stop at their rung");
    let grid = dir.path().join("runs/tiny");
    let done = read(grid.join("002-margin_3/done.toml"));
    assert!(
        done.contains("state = \"pruned\"") && done.contains("iterations = 2"),
        "{done}"
    );
    assert!(
        done.contains("ranks 3 of 3 at rung 2, the top 1 go on"),
        "{done}"
    );
    let rows = summary_rows(dir.path());
    let status: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (&r[3], &r[summary_column("status")]))
        .collect();
    assert_eq!(
        status,
        [
            ("12", "finished"),
            ("12", "finished"),
            ("2", "pruned"),
            ("2", "pruned")
        ]
    );
    assert_eq!(&rows[2][summary_column("map_at_r")], "", "not measured");
    let second = run_experiment(dir.path(), &body, &trainer, false);
    assert_eq!(
        outline(&second.events),
        ["0 skipped", "1 skipped", "2 pruned at 2", "3 pruned at 2"]
    );
    assert_eq!(trainer.calls().len(), 4, "nothing is trained again");
    let fresh = run_experiment(dir.path(), &body, &trainer, true);
    assert_eq!((fresh.report.finished, fresh.report.pruned), (2, 2));
    assert_eq!(trainer.calls().len(), 8, "--fresh forgets the decisions");
}

/// A cell resumed from before its rung (killed after the decision, before done.toml) gets
/// the decision recorded for it, not a new one.
#[test]
fn a_decision_is_kept_when_the_cell_reaches_its_rung_again() {
    let dir = tempfile::tempdir().unwrap();
    let body = scheduled("kind = \"asha\"\nmin_iterations = 2\neta = 2\n");
    let trainer = ScriptedTrainer::default();
    run_experiment(dir.path(), &body, &trainer, false);
    let cell = dir.path().join("runs/tiny/002-margin_3");
    fs::remove_file(cell.join("done.toml")).unwrap();
    for f in fs::read_dir(&cell).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "solverstate") {
            fs::remove_file(path).unwrap();
        }
    }
    let again = run_experiment(dir.path(), &body, &trainer, false);
    assert!(outline(&again.events).contains(&"2 pruned at 2".to_string()));
    let records =
        siamese_grid::schedule::read_records(&dir.path().join("runs/tiny/schedule.csv")).unwrap();
    let of_cell = records.iter().filter(|r| r.cell == "002-margin_3").count();
    assert_eq!(of_cell, 1, "one decision per cell and rung");
}

/// The median rule from iteration 2: margin 2 has no one to compare with, margin 1 beats
/// it, margins 3 and 4 are worse than the median of those before them.
#[test]
fn the_median_rule_prunes_cells_worse_than_the_median() {
    let dir = tempfile::tempdir().unwrap();
    let body = scheduled("kind = \"median\"\ngrace_iterations = 2\n");
    let trainer = ScriptedTrainer::default();
    let run = run_experiment(dir.path(), &body, &trainer, false);
    let ends: Vec<String> = outline(&run.events)
        .into_iter()
        .filter(|l| l.contains("finished") || l.contains("pruned"))
        .collect();
    assert_eq!(
        ends,
        ["0 finished", "1 finished", "2 pruned at 2", "3 pruned at 2"]
    );
}

/// Two runners on one folder decide at once: each decision in schedule.csv is the one the
/// rule gives from the records before it (decisions are made one at a time, from disk),
/// every cell ends finished or pruned once, and the best cell is never pruned.
#[test]
fn two_runners_deciding_at_once_follow_the_records_on_disk() {
    use siamese_grid::ranking::RankMetric;
    use siamese_grid::schedule::{Schedule, decide, read_records};
    let dir = tempfile::tempdir().unwrap();
    let body = scheduled("kind = \"asha\"\nmin_iterations = 2\neta = 2\n").replace(
        "margin = [2, 1, 3, 4]",
        "margin = [2, 1, 3, 4, 5, 6, 0.5, 7]",
    );
    let trainer = ScriptedTrainer {
        pause: std::time::Duration::from_millis(3),
        ..Default::default()
    };
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let runners: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| run_experiment(dir.path(), &body, &trainer, false)))
            .collect();
        runners.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let ended: usize = runs
        .iter()
        .map(|r| r.report.finished + r.report.pruned)
        .sum();
    let both_pruned: usize = runs.iter().map(|r| r.report.pruned).sum();
    assert!(
        ended >= 8,
        "{:?}",
        runs.iter().map(|r| &r.report).collect::<Vec<_>>()
    );
    assert!(both_pruned > 0);
    let mut trained: Vec<String> = trainer.calls().into_iter().map(|(id, _)| id).collect();
    trained.sort();
    trained.dedup();
    assert_eq!(trained.len(), 8);
    assert_eq!(trainer.calls().len(), 8, "each cell trained once");
    let records = read_records(&dir.path().join("runs/tiny/schedule.csv")).unwrap();
    let asha = Schedule::Asha {
        min_iterations: 2,
        eta: 2,
    };
    let loss = RankMetric::named("test_loss").unwrap();
    for (i, r) in records.iter().enumerate() {
        let earlier: Vec<(&str, f64)> = records[..i]
            .iter()
            .filter(|e| e.iteration == r.iteration)
            .map(|e| (e.cell.as_str(), e.value))
            .collect();
        assert!(!earlier.iter().any(|(c, _)| *c == r.cell), "decided twice");
        let replayed = decide(&asha, &loss, &earlier, &r.cell, r.value, r.iteration);
        assert_eq!(replayed.decision, r.decision, "record {i}: {r:?}");
    }
    let rows = summary_rows(dir.path());
    assert_eq!(rows.len(), 8, "summary.csv lists every cell");
    let best = rows.iter().find(|r| &r[1] == "0.5").unwrap();
    assert_eq!(&best[summary_column("status")], "finished");
    for row in &rows {
        let pruned = &row[summary_column("status")] == "pruned";
        let cell = dir.path().join("runs/tiny").join(&row[0]);
        let tested = log_rows(&cell).iter().filter(|(_, _, t)| *t).count();
        let at: usize = row[3].parse().unwrap();
        assert_eq!(tested, at / 2, "{} stopped after its decision", &row[0]);
        assert!(pruned || at == 12);
    }
}

#[test]
fn a_cell_too_big_for_memory_stops_the_grid_before_any_cell_trains() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = ScriptedTrainer {
        memory_bytes: vec![1 << 20, u64::MAX / 2],
        ..Default::default()
    };
    let Err(RunError::Memory(e)) = try_run(dir.path(), TINY, &trainer, false) else {
        panic!("expected a memory error");
    };
    assert_eq!(e.what, "cell 001-margin_2");
    let text = e.to_string();
    assert!(text.contains("(scripted weights = "), "{text}");
    assert!(
        trainer.calls().is_empty(),
        "a cell trained before the check"
    );
}

#[test]
fn cells_that_fit_alone_but_not_side_by_side_are_an_error_with_two_workers() {
    let Some(available) = siamese_layers::memory::Available::now() else {
        return; // no memory figures on this system: nothing is checked
    };
    let each = available.bytes / 10 * 7;
    let run_with = |workers: usize| {
        let dir = tempfile::tempdir().unwrap();
        let trainer = ScriptedTrainer {
            memory_bytes: vec![each, each],
            ..Default::default()
        };
        let file = support::experiment_file(dir.path(), "tiny", TINY);
        let experiment = Experiment::load(&file).unwrap();
        let cells = Cell::expand(&experiment);
        let options = RunOptions {
            out: dir.path().join("runs"),
            workers,
            threads: 1,
            fresh: false,
        };
        let (tx, _rx) = mpsc::channel();
        let result = run_grid(&experiment, &cells, &options, &trainer, &Control::new(), tx);
        (result, trainer.calls().len())
    };
    match run_with(2) {
        (Err(e @ RunError::MemoryTogether { .. }), 0) => {
            let text = e.to_string();
            assert!(
                text.starts_with("2 workers training side by side need "),
                "{text}"
            );
            assert!(text.contains("cell 000-margin_1") && text.contains("use fewer --workers"));
        }
        (other, calls) => {
            panic!("expected MemoryTogether before any call, got {other:?} after {calls} calls")
        }
    }
    let (result, calls) = run_with(1);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(calls, 2);
}

#[test]
fn the_report_ranks_the_cells_and_charts_each_metric_against_each_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"tiny\"\niterations = 12\ntest_interval = 4\nsnapshot_interval = 5\n\
                [grid]\nmargin = [1, 2]\nbase_lr = [0.001, 0.1]\n";
    run_experiment(dir.path(), body, &ScriptedTrainer::default(), false);
    let grid_dir = dir.path().join("runs/tiny");
    let files = siamese_grid::report::write_report(&grid_dir).unwrap();
    assert_eq!((files.finished, files.cells), (4, 4));
    let page = read(&files.page);
    assert!(page.starts_with("# tiny: report\n\n4 of 4 cells finished (12 iterations each), ranked by MAP@R (higher is better)."), "{page}");
    // The scripted losses grow with the margin, so by test loss the margin-1 cells lead; the
    // table lists every cell once, with its parameters.
    for id in ["000-margin_1-base_lr_0.001", "003-margin_2-base_lr_0.1"] {
        assert_eq!(page.matches(&format!("| {id} |")).count(), 1, "{page}");
    }
    for chart in [
        "map_at_r-vs-margin.png",
        "test_loss-vs-base_lr.png",
        "best-test-loss.png",
        "best-embedding.png",
    ] {
        assert!(
            page.contains(&format!("(report/{chart})")),
            "{chart} not in\n{page}"
        );
        let bytes = fs::read(grid_dir.join("report").join(chart)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{chart} is not a PNG");
    }
    assert!(files.charts.len() >= 4);
}

#[test]
fn a_report_of_a_grid_with_nothing_finished_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = ScriptedTrainer {
        fail_cell: Some(0),
        memory_bytes: Vec::new(),
        ..Default::default()
    };
    let body = "name = \"tiny\"\niterations = 12\ntest_interval = 4\nsnapshot_interval = 5\n[grid]\nmargin = [1]\n";
    run_experiment(dir.path(), body, &trainer, false);
    let e = siamese_grid::report::write_report(&dir.path().join("runs/tiny")).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("runs/tiny: no finished cell yet, expected at least one with a done.toml"),
        "{e}"
    );
}
