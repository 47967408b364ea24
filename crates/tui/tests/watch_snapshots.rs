//! `--watch`: a grid folder built here as Slurm tasks leave it (finished, running, failed,
//! silent, queued cells) is polled by `WatchFeed`, and the screen it feeds is snapshot-tested.

#[path = "../../grid/tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use siamese_grid::cell_folder::CellFolder;
use siamese_grid::cell_log::{CellLog, KeptLog};
use siamese_grid::cell_progress::{CellStatus, DigitScatter, RunState, write_embedding};
use siamese_grid::cell_trainer::{CellEvent, CellSummary};
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_grid::follow::WatchFeed;
use siamese_grid::manifest::GridManifest;
use siamese_tui::dashboard::{Dashboard, Status};
use siamese_tui::screen::draw;
use siamese_tui::watch::watch_note;

/// The watcher's clock, in Unix seconds.
const WALL: u64 = 1_800_000_000;

/// A cell's training events up to `upto` iterations (10 a second, tested every 250), with
/// the training time of each.
fn train_events(upto: u32) -> Vec<(CellEvent, f64)> {
    let mut events = Vec::new();
    for iter in 1..=upto {
        let seconds = f64::from(iter) / 10.0;
        let train = CellEvent::Train {
            cell: 0,
            iter,
            lr: 0.01,
            loss: 0.25 / (1.0 + iter as f32 / 40.0),
        };
        events.push((train, seconds));
        if iter % 250 == 0 {
            let test = CellEvent::Test {
                cell: 0,
                iter,
                loss: 0.27 / (1.0 + iter as f32 / 40.0),
                outputs: Vec::new(),
            };
            events.push((test, seconds));
        }
    }
    events
}

/// A cell folder whose log.csv holds `events`, written as the runner writes it.
fn folder(grid: &Path, cell: &Cell, events: &[(CellEvent, f64)]) -> CellFolder {
    let folder = CellFolder::new(grid.join(&cell.id));
    fs::create_dir_all(&folder.dir).unwrap();
    let mut log = CellLog::start(&folder.dir, &KeptLog::default()).unwrap();
    for (event, seconds) in events {
        log.record(event, *seconds);
    }
    log.finish().unwrap();
    folder
}

fn status(state: RunState, iter: u32, heartbeat: u64, error: Option<&str>) -> CellStatus {
    CellStatus {
        state,
        iter,
        total: 1000,
        host: "node07".into(),
        pid: 4242,
        job: Some("8086_1".into()),
        started: heartbeat.saturating_sub(60),
        heartbeat,
        error: error.map(String::from),
    }
}

/// Writes status.toml as given (`CellStatus::write` would stamp the heartbeat with now).
fn put_status(grid: &Path, cell: &Cell, status: &CellStatus) {
    let text = toml::to_string(status).unwrap();
    fs::write(grid.join(&cell.id).join("status.toml"), text).unwrap();
}

/// A five-cell margin sweep as its Slurm tasks leave it: 000 finished, 001 running (with an
/// embedding), 002 failed, 003 silent for ten minutes, 004 queued.
fn grid_folder(grid: &Path) -> Vec<Cell> {
    fs::create_dir_all(grid).unwrap();
    let dir = grid.parent().unwrap();
    let body = "name = \"margin_sweep\"\niterations = 1000\ntest_interval = 250\n[grid]\nmargin = [0.5, 1, 2, 4, 8]\n";
    let experiment = Experiment::load(&support::experiment_file(dir, "m", body)).unwrap();
    let cells = Cell::expand(&experiment);
    GridManifest::new(&experiment, &cells).write(grid).unwrap();

    let done = folder(grid, &cells[0], &train_events(1000));
    done.write_features(&support::clusters(200, 0.3)).unwrap();
    done.write_done(&CellSummary {
        iterations: 1000,
        train_loss: 0.0213,
        test_loss: 0.0241,
        metrics: siamese_testkit::embedding_metrics(0.9415, 0.6415, 0.9172),
        wall_seconds: 100.0,
    })
    .unwrap();
    put_status(
        grid,
        &cells[0],
        &status(RunState::Done, 1000, WALL - 3000, None),
    );

    let running = folder(grid, &cells[1], &train_events(600));
    let points: Vec<(f32, f32, u8)> = support::clusters(300, 1.2)
        .into_iter()
        .map(|(f, d)| (f[0], f[1], d))
        .collect();
    let scatter = DigitScatter {
        iter: 500,
        dim: 2,
        points,
    };
    write_embedding(&running.dir, &scatter).unwrap();
    put_status(
        grid,
        &cells[1],
        &status(RunState::Running, 600, WALL - 4, None),
    );

    folder(grid, &cells[2], &train_events(212));
    let nan = "loss is NaN at iteration 212 (base_lr too high?)";
    put_status(
        grid,
        &cells[2],
        &status(RunState::Failed, 212, WALL - 900, Some(nan)),
    );

    folder(grid, &cells[3], &train_events(90));
    put_status(
        grid,
        &cells[3],
        &status(RunState::Running, 90, WALL - 600, None),
    );
    cells
}

/// Polls `grid` once at `now` into a watching dashboard.
fn watched(feed: &mut WatchFeed, dash: &mut Dashboard, now: Instant, wall: u64) {
    for (event, at) in feed.poll(now, wall) {
        dash.apply(event, at);
    }
}

fn new_dashboard(feed: &WatchFeed) -> Dashboard {
    let mut dash = Dashboard::new(
        feed.experiment().into(),
        watch_note(Path::new("runs/margin_sweep")),
        feed.cells().to_vec(),
        feed.iterations(),
    );
    dash.watching = true;
    dash
}

fn render(dash: &Dashboard, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, dash)).unwrap();
    terminal.backend().clone()
}

fn statuses(dash: &Dashboard) -> Vec<Status> {
    dash.views.iter().map(|v| v.status.clone()).collect()
}

#[test]
fn a_watched_grid_shows_finished_running_failed_silent_and_queued_cells() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("runs/margin_sweep");
    grid_folder(&grid);
    let mut feed = WatchFeed::open(&grid).unwrap();
    let mut dash = new_dashboard(&feed);
    watched(&mut feed, &mut dash, Instant::now(), WALL);
    let silent = "no heartbeat from node07 (Slurm job 8086_1) for 600 s: the task died (time or memory limit? see the job's log)";
    assert_eq!(
        statuses(&dash),
        [
            Status::Done,
            Status::Running,
            Status::Failed("loss is NaN at iteration 212 (base_lr too high?)".into()),
            Status::Failed(silent.into()),
            Status::Queued,
        ]
    );
    // The running cell logs 10 iterations a second: 400 to go is 40 s.
    assert_eq!(dash.views[1].eta, Some(Duration::from_secs(40)));
    assert_eq!(dash.views[1].iter, 600);
    assert!(!feed.all_over());
    dash.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    insta::assert_snapshot!(render(&dash, 110, 30));
    dash.on_key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::NONE));
    dash.on_key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
    insta::assert_snapshot!("the_silent_cell", render(&dash, 110, 24));
}

#[test]
fn later_polls_bring_new_rows_and_the_end_of_a_cell() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("runs/margin_sweep");
    let cells = grid_folder(&grid);
    let mut feed = WatchFeed::open(&grid).unwrap();
    let mut dash = new_dashboard(&feed);
    let t0 = Instant::now();
    watched(&mut feed, &mut dash, t0, WALL);
    assert!(
        feed.poll(t0, WALL).is_empty(),
        "nothing changed, nothing sent"
    );

    // Cell 001 logs 100 more iterations (rows 600 to 699; the last line still half
    // written), then finishes.
    let log = grid.join(&cells[1].id).join("log.csv");
    let mut file = fs::OpenOptions::new().append(true).open(&log).unwrap();
    for iter in 601..=700 {
        let row = iter - 1;
        writeln!(file, "{row},0.01,0.01,,{:.3}", f64::from(iter) / 10.0).unwrap();
    }
    write!(file, "700,0.01,0.01,").unwrap();
    watched(
        &mut feed,
        &mut dash,
        t0 + Duration::from_secs(10),
        WALL + 10,
    );
    assert_eq!(dash.views[1].iter, 700);
    assert_eq!(dash.views[1].train.len(), 700);
    assert_eq!(dash.views[1].status, Status::Running);

    // Cell 004 starts on another node; cell 001 is done.
    let started = folder(&grid, &cells[4], &[]);
    put_status(
        &grid,
        &cells[4],
        &status(RunState::Running, 0, WALL + 19, None),
    );
    CellFolder::new(grid.join(&cells[1].id))
        .write_done(&CellSummary {
            iterations: 1000,
            train_loss: 0.01,
            test_loss: 0.02,
            metrics: siamese_testkit::embedding_metrics(0.95, 0.6500, 0.93),
            wall_seconds: 100.0,
        })
        .unwrap();
    watched(
        &mut feed,
        &mut dash,
        t0 + Duration::from_secs(20),
        WALL + 20,
    );
    assert_eq!(dash.views[1].status, Status::Done);
    assert_eq!(
        dash.views[1]
            .summary
            .as_ref()
            .unwrap()
            .metrics
            .precision_at_1,
        0.95
    );
    assert_eq!(dash.views[4].status, Status::Running);

    // Cell 004 fails; the grid is over (every cell finished or failed).
    assert!(!feed.all_over());
    put_status(
        &grid,
        &cells[4],
        &status(RunState::Failed, 0, WALL + 25, Some("out of memory")),
    );
    watched(
        &mut feed,
        &mut dash,
        t0 + Duration::from_secs(30),
        WALL + 30,
    );
    assert_eq!(dash.views[4].status, Status::Failed("out of memory".into()));
    assert!(feed.all_over());
    drop(started);
}

#[test]
fn a_folder_without_grid_toml_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = WatchFeed::open(dir.path()).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "{}: not found: expected a grid folder written by siamese-tui (runs/<experiment>/, made by running the grid, `slurm` or `run-cell`)",
            dir.path().join("grid.toml").display()
        )
    );
}
