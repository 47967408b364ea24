//! What the user sees: a fixed dashboard state rendered into ratatui's TestBackend and
//! compared with reviewed text snapshots (grid table, charts, scatter, popups, small screens).

#[path = "../../grid/tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use siamese_grid::cell_progress::DigitScatter;
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
        metrics: siamese_testkit::embedding_metrics(0.9415, 0.6415, 0.9172),
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
            scatter: DigitScatter {
                iter: 500,
                dim: 2,
                points,
            },
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

/// Two margins × three seeds, all finished with made-up metrics: margin 2 is better on
/// average, margin 1 has the single best cell.
fn repeated_grid() -> Dashboard {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"seeds\"\niterations = 100\ntest_interval = 50\n[grid]\nmargin = [1, 2]\nrepeats = 3\n";
    let experiment = Experiment::load(&support::experiment_file(dir.path(), "s", body)).unwrap();
    let cells = Cell::expand(&experiment);
    let mut dash = Dashboard::new("seeds".into(), String::new(), cells, 100);
    let maps = [0.9, 0.1, 0.2, 0.5, 0.6, 0.7];
    for (cell, map) in maps.into_iter().enumerate() {
        let summary = CellSummary {
            iterations: 100,
            train_loss: 0.1,
            test_loss: 1.0 - map,
            metrics: siamese_testkit::embedding_metrics(map + 0.05, map, 0.8),
            wall_seconds: 5.0,
        };
        dash.apply(CellEvent::Finished { cell, summary }, Instant::now());
    }
    dash
}

#[test]
fn sorted_by_the_experiment_metric() {
    let mut dash = repeated_grid();
    press(&mut dash, KeyCode::Char('s'));
    // The selection stays on its cell (000), now first; down moves in the sorted order.
    press(&mut dash, KeyCode::Down);
    assert_eq!(dash.selected, 5);
    insta::assert_snapshot!(render(&dash, 100, 28));
}

#[test]
fn the_comparison_view_ranks_every_cell_with_its_parameters_and_metrics() {
    let mut dash = repeated_grid();
    press(&mut dash, KeyCode::Char('c'));
    // Down moves in the ranked order: from 000 (best) to 005.
    press(&mut dash, KeyCode::Down);
    assert_eq!(dash.selected, 5);
    insta::assert_snapshot!(render(&dash, 120, 16));
    press(&mut dash, KeyCode::Char('c'));
    assert!(!dash.comparing);
}

#[test]
fn seeds_aggregated_by_parameters() {
    let mut dash = repeated_grid();
    press(&mut dash, KeyCode::Char('a'));
    press(&mut dash, KeyCode::Char('s'));
    insta::assert_snapshot!(render(&dash, 100, 18));
}

#[test]
fn sort_cycles_through_the_metrics_and_back() {
    let mut dash = repeated_grid();
    let mut seen = Vec::new();
    for _ in 0..6 {
        press(&mut dash, KeyCode::Char('s'));
        seen.push(dash.sort.map(|m| m.key));
    }
    assert_eq!(
        seen,
        [
            Some("map_at_r"),
            Some("precision_at_1"),
            Some("verification_accuracy_mean"),
            Some("test_loss"),
            None,
            Some("map_at_r")
        ]
    );
}

#[test]
fn a_wide_embedding_is_shown_as_its_pca() {
    let mut dash = repeated_grid();
    let features: Vec<(Vec<f32>, u8)> = support::clusters(60, 0.3)
        .into_iter()
        .map(|(f, d)| (vec![f[0], f[1], f[0] - f[1]], d))
        .collect();
    dash.load_history(0, &[], 100, Some(features));
    let title = dash.views[0].embedding.as_ref().unwrap().projection_note();
    assert_eq!(title, "PCA of 3-D");
    let screen = format!("{:?}", render(&dash, 100, 30));
    assert!(
        screen.contains("embedding @100 · PCA of 3-D · 000"),
        "{screen}"
    );
}
