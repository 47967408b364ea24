//! `--watch runs/<experiment>`: the grid screen fed by siamese-grid's runs-folder follower,
//! so a grid run by Slurm array tasks (or by another siamese-tui) is watched from anywhere.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{self, Event, KeyEventKind};
use siamese_grid::cell_progress::unix_now;
use siamese_grid::follow::{POLL_INTERVAL, WatchFeed};

use crate::dashboard::{Action, Dashboard};
use crate::terminal::{FrameClock, TerminalGuard, install_panic_hook};

/// The live screen for the grid in `grid_dir`, until the user quits.
pub fn watch_screen(grid_dir: &Path) -> anyhow::Result<()> {
    let mut feed = WatchFeed::open(grid_dir)?;
    install_panic_hook();
    let mut guard =
        TerminalGuard::enter().context("cannot start the terminal screen (try --headless)")?;
    let mut dash = Dashboard::new(
        feed.experiment().to_string(),
        watch_note(grid_dir),
        feed.cells().to_vec(),
        feed.iterations(),
    );
    dash.watching = true;
    dash.metric = feed.metric();
    let mut screen = WatchedScreen {
        clock: FrameClock::default(),
        next_poll: Instant::now(),
        dirty: true,
    };
    loop {
        screen.poll_files(&mut feed, &mut dash);
        screen.draw(&mut guard, &dash)?;
        if screen.on_terminal_event(&mut guard, &mut dash)? == Action::Quit {
            return Ok(());
        }
    }
}

/// The watch loop's timing: when to read the files again, and whether to redraw.
struct WatchedScreen {
    clock: FrameClock,
    next_poll: Instant,
    dirty: bool,
}

impl WatchedScreen {
    /// Reads the files once a poll is due, applying what changed.
    fn poll_files(&mut self, feed: &mut WatchFeed, dash: &mut Dashboard) {
        let now = Instant::now();
        if now < self.next_poll {
            return;
        }
        for (event, at) in feed.poll(now, unix_now()) {
            dash.apply(event, at);
            self.dirty = true;
        }
        self.next_poll = now + POLL_INTERVAL;
    }

    /// Draws a frame when something changed and the frame clock allows it.
    fn draw(&mut self, guard: &mut TerminalGuard, dash: &Dashboard) -> anyhow::Result<()> {
        if self.dirty && self.clock.ready(Instant::now()) {
            guard
                .terminal
                .draw(|frame| crate::screen::draw(frame, dash))?;
            self.clock.drew(Instant::now());
            self.dirty = false;
        }
        Ok(())
    }

    /// Waits for a key or a resize until the next poll or frame is due, and handles it.
    fn on_terminal_event(
        &mut self,
        guard: &mut TerminalGuard,
        dash: &mut Dashboard,
    ) -> anyhow::Result<Action> {
        let now = Instant::now();
        let frame_wait = if self.dirty {
            self.clock.wait(now)
        } else {
            POLL_INTERVAL
        };
        let wait = self
            .next_poll
            .saturating_duration_since(now)
            .min(frame_wait)
            .max(Duration::from_millis(10));
        if !event::poll(wait)? {
            return Ok(Action::Redraw);
        }
        match event::read()? {
            Event::Key(key) if key.kind == KeyEventKind::Press => {
                self.dirty = true;
                Ok(dash.on_key(key))
            }
            Event::Resize(_, _) => {
                guard.terminal.autoresize()?;
                self.dirty = true;
                Ok(Action::Redraw)
            }
            _ => Ok(Action::Redraw),
        }
    }
}

/// The line under the title while watching.
pub fn watch_note(grid_dir: &Path) -> String {
    format!(
        "watching {} · files read every {} s; quitting leaves the cells running",
        grid_dir.display(),
        POLL_INTERVAL.as_secs()
    )
}
