//! The live screen: a render thread that owns the terminal, takes cell events from the
//! runner's channel and keys from crossterm, and redraws at most ten times a second.

use std::io::{self, Stdout};
use std::path::Path;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{self, Event, KeyEventKind};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use siamese_grid::cell_folder::CellFolder;
use siamese_grid::cell_trainer::{CellEvent, CellTrainer, Control};
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_grid::runner::{GridReport, RunOptions, run_grid};
use siamese_report::{LabelledFeatures, LogRow};

use crate::dashboard::{Action, Dashboard};

/// Shortest time between two frames (10 frames a second at most).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(100);
/// Name of the render thread (the panic hook restores the terminal for it).
const RENDER_THREAD: &str = "siamese-tui-render";

/// Raw mode and the alternate screen, undone on drop (also when unwinding).
pub struct TerminalGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        enable_raw_mode()?;
        if let Err(e) = crossterm::execute!(io::stdout(), EnterAlternateScreen) {
            restore_terminal();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore_terminal();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        restore_terminal();
    }
}

/// Leaves raw mode and the alternate screen (harmless when not in them).
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = crossterm::execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Restores the terminal before a panic message is printed. Panics on worker threads are
/// caught by the runner and shown as a failed cell, so they leave the screen alone.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("siamese-worker"));
        if !worker {
            restore_terminal();
            previous(info);
        }
    }));
}

/// Runs the grid behind the live screen; returns when the user leaves (after a stop, the
/// running cells have saved their snapshots).
pub fn run_screen(
    experiment: &Experiment,
    cells: &[Cell],
    options: &RunOptions,
    trainer: &dyn CellTrainer,
    control: &Control,
) -> anyhow::Result<GridReport> {
    install_panic_hook();
    let guard =
        TerminalGuard::enter().context("cannot start the terminal screen (try --headless)")?;
    let note = format!(
        "{} · {}",
        experiment.data.note,
        crate::headless::start_line(experiment, cells, options)
    );
    let mut dash = Dashboard::new(
        experiment.name.clone(),
        note,
        cells.to_vec(),
        experiment.iterations,
    );
    dash.metric = experiment.metric;
    let (tx, rx) = std::sync::mpsc::channel();
    let grid_dir = options.out.join(&experiment.name);
    std::thread::scope(|scope| {
        let render = std::thread::Builder::new()
            .name(RENDER_THREAD.into())
            .spawn_scoped(scope, move || {
                let rendered = render_loop(guard, dash, &grid_dir, rx, control);
                if rendered.is_err() {
                    // Without a screen nobody can stop the grid: stop it now (resumable).
                    control.request_stop();
                }
                rendered
            })
            .context("cannot start the render thread")?;
        let report = run_grid(experiment, cells, options, trainer, control, tx);
        render
            .join()
            .map_err(|_| anyhow::anyhow!("the render thread panicked"))??;
        Ok(report?)
    })
}

/// Paces frames: at most one per [`FRAME_INTERVAL`].
#[derive(Debug, Default)]
pub struct FrameClock {
    last: Option<Instant>,
}

impl FrameClock {
    /// Whether a frame may be drawn at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|t| now.duration_since(t) >= FRAME_INTERVAL)
    }

    /// Records a frame drawn at `now`.
    pub fn drew(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// How long until the next frame may be drawn.
    pub fn wait(&self, now: Instant) -> Duration {
        self.last.map_or(Duration::ZERO, |t| {
            FRAME_INTERVAL.saturating_sub(now.duration_since(t))
        })
    }
}

/// For a cell finished or resumed from an earlier run: its logged curves (and, when
/// finished, its features) read from the cell folder, so the screen shows them too.
fn history_of(event: &CellEvent, dash: &Dashboard, grid_dir: &Path) -> Option<HistoryFromDisk> {
    let (cell, upto, finished) = match event {
        CellEvent::Skipped { cell, summary } => (*cell, summary.iterations, true),
        CellEvent::Started {
            cell,
            resumed_from: Some(from),
            ..
        } => (*cell, *from, false),
        _ => return None,
    };
    let folder = CellFolder::new(grid_dir.join(&dash.cells.get(cell)?.id));
    let features = if finished {
        folder.read_features()
    } else {
        None
    };
    Some(HistoryFromDisk {
        cell,
        rows: folder.read_log(),
        upto,
        features,
    })
}

/// A cell's log rows (up to `upto` iterations) and features, read from its folder.
struct HistoryFromDisk {
    cell: usize,
    rows: Vec<LogRow>,
    upto: u32,
    features: Option<LabelledFeatures>,
}

/// The render thread: events in, keys in, frames out at most every [`FRAME_INTERVAL`].
fn render_loop(
    mut guard: TerminalGuard,
    mut dash: Dashboard,
    grid_dir: &Path,
    events: Receiver<CellEvent>,
    control: &Control,
) -> anyhow::Result<()> {
    let mut clock = FrameClock::default();
    let mut dirty = true;
    loop {
        loop {
            match events.try_recv() {
                Ok(event) => {
                    let history = history_of(&event, &dash, grid_dir);
                    dash.apply(event, Instant::now());
                    if let Some(h) = history {
                        dash.load_history(h.cell, &h.rows, h.upto, h.features);
                    }
                    dirty = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    dirty |= !dash.grid_over;
                    dash.grid_over = true;
                    break;
                }
            }
        }
        if dash.grid_over && dash.stopping {
            return Ok(());
        }
        if dirty && clock.ready(Instant::now()) {
            guard
                .terminal
                .draw(|frame| crate::screen::draw(frame, &dash))?;
            clock.drew(Instant::now());
            dirty = false;
        }
        if event::poll(clock.wait(Instant::now()).max(Duration::from_millis(10)))? {
            match event::read()? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    dirty = true;
                    match dash.on_key(key) {
                        Action::Redraw => {}
                        Action::SetPaused(paused) => control.set_paused(paused),
                        Action::StopAndQuit => {
                            control.set_paused(false);
                            control.request_stop();
                        }
                        Action::Quit => return Ok(()),
                    }
                }
                Event::Resize(_, _) => {
                    guard.terminal.autoresize()?;
                    dirty = true;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_at_least_a_tenth_of_a_second_apart() {
        let t0 = Instant::now();
        let mut clock = FrameClock::default();
        assert!(clock.ready(t0));
        clock.drew(t0);
        let ms = |n| t0 + Duration::from_millis(n);
        assert!(!clock.ready(ms(99)));
        assert_eq!(clock.wait(ms(40)), Duration::from_millis(60));
        assert!(clock.ready(ms(100)));
        // Over one simulated second of constant events, at most 10 frames.
        let mut clock = FrameClock::default();
        let frames = (0..1000u64)
            .filter(|&i| {
                let ready = clock.ready(ms(i));
                if ready {
                    clock.drew(ms(i));
                }
                ready
            })
            .count();
        assert_eq!(frames, 10);
    }
}
