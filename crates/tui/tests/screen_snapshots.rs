//! What the user sees: a fixed dashboard state rendered into ratatui's TestBackend and
//! compared with reviewed text snapshots (grid table, charts, scatter, popups, small screens).

#[path = "../../grid/tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use siamese_grid::cell_trainer::{CellEvent, CellSummary};
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_report::LogRow;
use siamese_tui::dashboard::{Action, Dashboard};
use siamese_tui::screen::draw;

/// A four-cell margin sweep: one finished, one running (with losses and an embedding), one
/// failed, one queued; the running cell is selected.
fn dashboard() -> Dashboard {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"margin_sweep\"\niterations = 1000\ntest_interval = 250\n[grid]\nmargin = [0.5, 1, 2, 4]\n";
    let experiment = Experiment::load(&support::experiment_file(dir.path(), "m", body)).unwrap();
    let cells = Cell::expand(&experiment);
    let note =
        "data: data/mnist-sample (the 10,000-digit sample) · 2 workers × 1 thread".to_string();
    let mut dash = Dashboard::new("margin_sweep".into(), note, cells, 1000);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let summary = CellSummary {
        iterations: 1000,
        train_loss: 0.0213,
        test_loss: 0.0241,
        knn_accuracy: 0.9415,
        pair_accuracy: 0.9172,
        pair_threshold: 0.31,
        wall_seconds: 74.2,
    };
    dash.apply(CellEvent::Skipped { cell: 0, summary }, t0);
    // Its curves and embedding come from its folder (log.csv, features.csv): the loss of
    // the n-th iteration is in row n - 1 (Caffe's iteration number).
    let rows: Vec<LogRow> = (1..=1000u32)
        .map(|iter| LogRow {
            iter: iter as i32 - 1,
            lr: Some(0.01),
            train_loss: Some(0.12 / (1.0 + iter as f32 / 60.0)),
            test_loss: None,
            elapsed_s: 0.0,
        })
        .collect();
    dash.load_history(0, &rows, 1000, Some(support::clusters(200, 0.3)));
    dash.apply(
        CellEvent::Started {
            cell: 1,
            total_iters: 1000,
            resumed_from: None,
        },
        t0,
    );
    for iter in 1..=600u32 {
        let loss = 0.25 / (1.0 + iter as f32 / 40.0) + 0.01 * ((iter * 7 % 13) as f32 / 13.0);
        dash.apply(
            CellEvent::Train {
                cell: 1,
                iter,
                lr: 0.01,
                loss,
            },
            at(u64::from(iter) / 10),
        );
        if iter % 250 == 0 || iter == 1 {
            let test = 0.27 / (1.0 + iter as f32 / 40.0);
            dash.apply(
                CellEvent::Test {
                    cell: 1,
                    iter,
                    loss: test,
                    outputs: vec![],
                },
                at(60),
            );
        }
    }
    let points = support::clusters(300, 1.2)
        .into_iter()
        .map(|(f, d)| (f[0], f[1], d))
        .collect();
    dash.apply(
        CellEvent::Embedding {
            cell: 1,
            iter: 500,
            points,
        },
        at(50),
    );
    dash.apply(
        CellEvent::Started {
            cell: 2,
            total_iters: 1000,
            resumed_from: None,
        },
        t0,
    );
    dash.apply(
        CellEvent::Failed {
            cell: 2,
            error: "loss is NaN".into(),
        },
        t0,
    );
    dash.on_key(KeyEvent::from(KeyCode::Down));
    dash
}

fn render(dash: &Dashboard, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, dash)).unwrap();
    terminal.backend().clone()
}

fn press(dash: &mut Dashboard, code: KeyCode) -> Action {
    dash.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

#[test]
fn grid_chart_and_scatter() {
    insta::assert_snapshot!(render(&dashboard(), 110, 32));
}

#[test]
fn log_scale_overlay_of_every_cell() {
    let mut dash = dashboard();
    press(&mut dash, KeyCode::Char('o'));
    press(&mut dash, KeyCode::Char('l'));
    press(&mut dash, KeyCode::Tab);
    press(&mut dash, KeyCode::Enter);
    insta::assert_snapshot!(render(&dash, 90, 24));
}

#[test]
fn zoomed_scatter() {
    let mut dash = dashboard();
    press(&mut dash, KeyCode::BackTab);
    press(&mut dash, KeyCode::Char('z'));
    insta::assert_snapshot!(render(&dash, 80, 24));
}

#[test]
fn help_overlay() {
    let mut dash = dashboard();
    press(&mut dash, KeyCode::Char('?'));
    insta::assert_snapshot!(render(&dash, 90, 26));
}

#[test]
fn quit_asks_and_paused_title() {
    let mut dash = dashboard();
    assert_eq!(
        press(&mut dash, KeyCode::Char('p')),
        Action::SetPaused(true)
    );
    press(&mut dash, KeyCode::Char('q'));
    insta::assert_snapshot!(render(&dash, 90, 24));
}

#[test]
fn small_terminal() {
    insta::assert_snapshot!(render(&dashboard(), 40, 6));
}

#[test]
fn a_finished_cell_from_an_earlier_run() {
    let mut dash = dashboard();
    press(&mut dash, KeyCode::Char('g'));
    insta::assert_snapshot!(render(&dash, 90, 26));
}

#[test]
fn a_cell_without_data_yet() {
    let mut dash = dashboard();
    press(&mut dash, KeyCode::Char('G'));
    insta::assert_snapshot!(render(&dash, 90, 22));
}
