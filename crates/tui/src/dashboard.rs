//! The screen's state: what each cell is doing (fed by `CellEvent`s) and the user's view
//! choices (selection, focused pane, overlay, log scale, popups), changed by keys.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use siamese_grid::cell_log::row_events;
use siamese_grid::cell_progress::DigitScatter;
use siamese_grid::cell_trainer::{CellEvent, CellSummary};
use siamese_grid::cells::Cell;
use siamese_grid::ranking::{
    Aggregate, DEFAULT_METRIC, ParamGroup, RankMetric, best_group, group_by_params, sorted_cells,
    sorted_groups,
};
use siamese_report::{LabelledFeatures, LogRow};

/// The metrics the grid table shows (and `s` sorts by, after the experiment's own).
pub const TABLE_METRICS: [&str; 3] = ["precision_at_1", "map_at_r", "verification_accuracy_mean"];
const SORT_KEYS: [&str; 4] = [
    TABLE_METRICS[0],
    TABLE_METRICS[1],
    TABLE_METRICS[2],
    "test_loss",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Queued,
    Running,
    Done,
    /// Finished in an earlier run.
    Skipped,
    Failed(String),
    Stopped,
    /// Being trained by another runner sharing the runs folder.
    Elsewhere,
    /// Stopped early by the experiment's `[schedule]`, now or in an earlier run.
    Pruned,
}

/// What the screen knows about one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellView {
    pub status: Status,
    /// Iterations done.
    pub iter: u32,
    pub total: u32,
    /// When this run of the cell started, and at which iteration (for the ETA).
    pub started: Option<(Instant, u32)>,
    pub eta: Option<Duration>,
    pub lr: Option<f32>,
    /// `(iteration, loss)` of every training iteration and test pass.
    pub train: Vec<(f64, f64)>,
    pub test: Vec<(f64, f64)>,
    /// The latest 2-D test embedding.
    pub embedding: Option<DigitScatter>,
    pub summary: Option<CellSummary>,
}

/// The panes Tab moves between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Grid,
    Chart,
    Scatter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popup {
    Help,
    ConfirmQuit,
}

/// What a key asks the screen's owner to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Just redraw.
    Redraw,
    /// Pause or resume training.
    SetPaused(bool),
    /// Stop the grid (cells snapshot and stay resumable), then leave.
    StopAndQuit,
    /// Leave now (the grid is over).
    Quit,
}

/// The whole screen state.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub title: String,
    /// A line under the title: data folder, workers.
    pub note: String,
    pub cells: Vec<Cell>,
    pub views: Vec<CellView>,
    pub selected: usize,
    pub focus: Pane,
    /// The focused pane fills the screen.
    pub zoom: bool,
    /// The chart shows every cell's training loss instead of the selected cell's curves.
    pub overlay: bool,
    pub log_scale: bool,
    pub paused: bool,
    pub popup: Option<Popup>,
    /// A stop was requested; waiting for running cells to save.
    pub stopping: bool,
    /// The runner is done (every cell finished, failed or stopped).
    pub grid_over: bool,
    /// `--watch`: the cells run in other processes (Slurm tasks); q leaves at once and
    /// nothing can be paused or stopped from here.
    pub watching: bool,
    /// The experiment's ranking metric (names the best combination).
    pub metric: RankMetric,
    /// `s`: the grid sorted by this metric, best first; `None`: grid order.
    pub sort: Option<RankMetric>,
    /// `a`: one row per parameter combination (the cells that differ only by seed).
    pub aggregated: bool,
    /// `c`: the comparison view, every cell ranked by the metric with its parameters and
    /// every metric, in place of the panes.
    pub comparing: bool,
}

impl Dashboard {
    pub fn new(title: String, note: String, cells: Vec<Cell>, total_iters: u32) -> Dashboard {
        let view = CellView {
            status: Status::Queued,
            iter: 0,
            total: total_iters,
            started: None,
            eta: None,
            lr: None,
            train: Vec::new(),
            test: Vec::new(),
            embedding: None,
            summary: None,
        };
        Dashboard {
            title,
            note,
            views: vec![view; cells.len()],
            cells,
            selected: 0,
            focus: Pane::Grid,
            zoom: false,
            overlay: false,
            log_scale: false,
            paused: false,
            popup: None,
            stopping: false,
            grid_over: false,
            watching: false,
            metric: RankMetric::named(DEFAULT_METRIC).expect("the default metric exists"),
            sort: None,
            aggregated: false,
            comparing: false,
        }
    }

    /// The finished cells' summaries, by cell index.
    pub fn summaries(&self) -> BTreeMap<usize, CellSummary> {
        self.views
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.summary.clone().map(|s| (i, s)))
            .collect()
    }

    /// The comparison view's order: by the sort metric (else the experiment's), best first.
    pub fn ranked_cells(&self) -> Vec<usize> {
        sorted_cells(
            &self.cells,
            &self.summaries(),
            &self.sort.unwrap_or(self.metric),
        )
    }

    /// The cells in the order the grid table shows them.
    pub fn cell_order(&self) -> Vec<usize> {
        match &self.sort {
            Some(metric) => sorted_cells(&self.cells, &self.summaries(), metric),
            None => (0..self.cells.len()).collect(),
        }
    }

    /// The parameter combinations in the order the aggregated table shows them.
    pub fn group_order(&self) -> Vec<ParamGroup> {
        let groups = group_by_params(&self.cells);
        match &self.sort {
            Some(metric) => sorted_groups(&groups, &self.summaries(), metric),
            None => groups,
        }
    }

    /// The best combination by the sort metric (else the experiment's), with its mean.
    pub fn best(&self) -> Option<(RankMetric, ParamGroup, Aggregate)> {
        let metric = self.sort.unwrap_or(self.metric);
        let groups = group_by_params(&self.cells);
        best_group(&groups, &self.summaries(), &metric).map(|(g, a)| (metric, g.clone(), a))
    }

    /// The sort after `s`: grid order, the experiment's metric, then the table's other
    /// metric columns and the test loss, back to grid order.
    fn next_sort(&self) -> Option<RankMetric> {
        let mut cycle: Vec<RankMetric> = vec![self.metric];
        for key in SORT_KEYS {
            let m = RankMetric::named(key).expect("sort keys are metrics");
            if !cycle.contains(&m) {
                cycle.push(m);
            }
        }
        match self.sort {
            None => Some(cycle[0]),
            Some(current) => {
                let at = cycle.iter().position(|m| *m == current).unwrap_or(0);
                cycle.get(at + 1).copied()
            }
        }
    }

    /// Moves the selection `step` rows down (negative: up) in the table as shown.
    fn move_selection(&mut self, step: isize) {
        let grouped = self.aggregated && !self.comparing;
        let rows: Vec<usize> = if self.comparing {
            self.ranked_cells()
        } else if grouped {
            self.group_order().iter().map(|g| g.cells[0]).collect()
        } else {
            self.cell_order()
        };
        let at = if grouped {
            let groups = self.group_order();
            groups
                .iter()
                .position(|g| g.cells.contains(&self.selected))
                .unwrap_or(0)
        } else {
            rows.iter().position(|&c| c == self.selected).unwrap_or(0)
        };
        let to = (at as isize + step).clamp(0, rows.len() as isize - 1);
        if let Some(&cell) = rows.get(to as usize) {
            self.selected = cell;
        }
    }

    /// Takes in one event; `now` is when it arrived (for the ETA).
    pub fn apply(&mut self, event: CellEvent, now: Instant) {
        let Some(view) = self.views.get_mut(event.cell()) else {
            return;
        };
        match event {
            CellEvent::Started {
                total_iters,
                resumed_from,
                ..
            } => {
                let from = resumed_from.unwrap_or(0);
                view.status = Status::Running;
                view.total = total_iters;
                view.iter = from;
                view.started = Some((now, from));
                view.eta = None;
                let keep =
                    |points: &mut Vec<(f64, f64)>| points.retain(|(i, _)| *i <= f64::from(from));
                keep(&mut view.train);
                keep(&mut view.test);
            }
            CellEvent::Train { iter, lr, loss, .. } => {
                view.iter = iter;
                view.lr = Some(lr);
                view.train.push((f64::from(iter), f64::from(loss)));
                if let Some((t0, i0)) = view.started
                    && iter > i0
                {
                    let per_iter = now.duration_since(t0).as_secs_f64() / f64::from(iter - i0);
                    view.eta = Some(Duration::from_secs_f64(
                        per_iter * f64::from(view.total.saturating_sub(iter)),
                    ));
                }
            }
            CellEvent::Test { iter, loss, .. } => {
                view.test.push((f64::from(iter), f64::from(loss)))
            }
            CellEvent::Embedding { scatter, .. } => view.embedding = Some(scatter),
            CellEvent::Snapshot { .. } | CellEvent::TempFilesRemoved { .. } => {}
            CellEvent::Finished { summary, .. } => {
                view.status = Status::Done;
                view.iter = view.total;
                view.eta = None;
                view.summary = Some(summary);
            }
            CellEvent::Skipped { summary, .. } => {
                view.status = Status::Skipped;
                view.iter = summary.iterations;
                view.summary = Some(summary);
            }
            CellEvent::Failed { error, .. } => {
                view.status = Status::Failed(error);
                view.eta = None;
            }
            CellEvent::Stopped { .. } => {
                view.status = Status::Stopped;
                view.eta = None;
            }
            CellEvent::ClaimedElsewhere { .. } => {
                view.status = Status::Elsewhere;
                view.eta = None;
            }
            CellEvent::Pruned { at, .. } => {
                view.status = Status::Pruned;
                view.iter = at;
                view.eta = None;
            }
        }
    }

    /// Fills a cell's curves from its log.csv rows, up to `upto` iterations (a cell
    /// finished or resumed from an earlier run) and, when given, its embedding from
    /// features.csv (first two components).
    pub fn load_history(
        &mut self,
        cell: usize,
        rows: &[LogRow],
        upto: u32,
        features: Option<LabelledFeatures>,
    ) {
        let Some(view) = self.views.get_mut(cell) else {
            return;
        };
        view.train.clear();
        view.test.clear();
        for event in rows.iter().flat_map(|r| row_events(cell, r)) {
            match event {
                CellEvent::Train { iter, loss, .. } if iter <= upto => {
                    view.train.push((f64::from(iter), f64::from(loss)))
                }
                CellEvent::Test { iter, loss, .. } if iter <= upto => {
                    view.test.push((f64::from(iter), f64::from(loss)))
                }
                _ => {}
            }
        }
        if let Some(scatter) = features.and_then(|f| DigitScatter::of_features(view.iter, &f)) {
            view.embedding = Some(scatter);
        }
    }

    /// Reacts to a key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return self.quit_now();
        }
        match self.popup {
            Some(Popup::ConfirmQuit) => {
                self.popup = None;
                return match key.code {
                    KeyCode::Char('y' | 'q') | KeyCode::Enter => self.quit_now(),
                    _ => Action::Redraw,
                };
            }
            Some(Popup::Help) if matches!(key.code, KeyCode::Esc | KeyCode::Char('?' | 'q')) => {
                self.popup = None;
                return Action::Redraw;
            }
            _ => {}
        }
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(-(self.cells.len() as isize)),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(self.cells.len() as isize),
            KeyCode::Char('s') => self.sort = self.next_sort(),
            KeyCode::Char('a') => self.aggregated = !self.aggregated,
            KeyCode::Char('c') => self.comparing = !self.comparing,
            KeyCode::Tab => self.focus = next_pane(self.focus, 1),
            KeyCode::BackTab => self.focus = next_pane(self.focus, 2),
            KeyCode::Enter | KeyCode::Char('z') => self.zoom = !self.zoom,
            KeyCode::Char('o') => self.overlay = !self.overlay,
            KeyCode::Char('l') => self.log_scale = !self.log_scale,
            KeyCode::Char('?') => self.popup = Some(Popup::Help),
            KeyCode::Esc => self.zoom = false,
            KeyCode::Char('p') if !self.grid_over && !self.stopping && !self.watching => {
                self.paused = !self.paused;
                return Action::SetPaused(self.paused);
            }
            KeyCode::Char('q') if self.grid_over || self.watching => return Action::Quit,
            KeyCode::Char('q') => self.popup = Some(Popup::ConfirmQuit),
            _ => {}
        }
        Action::Redraw
    }

    fn quit_now(&mut self) -> Action {
        if self.grid_over || self.watching {
            return Action::Quit;
        }
        self.stopping = true;
        self.paused = false;
        Action::StopAndQuit
    }

    /// How many cells are in each state.
    pub fn counts(&self) -> StatusCounts {
        let count =
            |f: &dyn Fn(&Status) -> bool| self.views.iter().filter(|v| f(&v.status)).count();
        StatusCounts {
            running: count(&|s| *s == Status::Running),
            done: count(&|s| matches!(s, Status::Done | Status::Skipped)),
            failed: count(&|s| matches!(s, Status::Failed(_))),
            waiting: count(&|s| matches!(s, Status::Queued | Status::Stopped)),
            elsewhere: count(&|s| *s == Status::Elsewhere),
            pruned: count(&|s| *s == Status::Pruned),
        }
    }
}

/// Cells per state, for the title line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCounts {
    pub running: usize,
    /// Finished in this run or an earlier one.
    pub done: usize,
    pub failed: usize,
    /// Queued, or stopped and not resumed yet.
    pub waiting: usize,
    /// Claimed by another runner sharing the runs folder.
    pub elsewhere: usize,
    /// Stopped early by the schedule.
    pub pruned: usize,
}

fn next_pane(pane: Pane, steps: usize) -> Pane {
    const ORDER: [Pane; 3] = [Pane::Grid, Pane::Chart, Pane::Scatter];
    let at = ORDER.iter().position(|p| *p == pane).unwrap_or(0);
    ORDER[(at + steps) % ORDER.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventKind;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new_with_kind(code, KeyModifiers::NONE, KeyEventKind::Press)
    }

    fn board(n: usize) -> Dashboard {
        let cells = (0..n)
            .map(|index| Cell {
                index,
                id: format!("{index:03}"),
                values: vec![],
                params: Default::default(),
            })
            .collect();
        Dashboard::new("t".into(), String::new(), cells, 100)
    }

    #[test]
    fn a_pruned_cell_stays_at_its_rung_and_is_counted() {
        let mut d = board(2);
        let now = Instant::now();
        let started = |cell| CellEvent::Started {
            cell,
            total_iters: 100,
            resumed_from: None,
        };
        d.apply(started(0), now);
        d.apply(started(1), now);
        let reason = "asha: test_loss 2 ranks 3 of 3 at rung 30, the top 1 go on".to_string();
        d.apply(
            CellEvent::Pruned {
                cell: 1,
                at: 30,
                reason,
            },
            now,
        );
        assert_eq!(
            (d.views[1].status.clone(), d.views[1].iter),
            (Status::Pruned, 30)
        );
        let c = d.counts();
        assert_eq!((c.running, c.pruned, c.waiting, c.done), (1, 1, 0, 0));
    }

    #[test]
    fn selection_stays_inside_the_grid() {
        let mut d = board(3);
        d.on_key(key(KeyCode::Up));
        assert_eq!(d.selected, 0);
        for _ in 0..5 {
            d.on_key(key(KeyCode::Char('j')));
        }
        assert_eq!(d.selected, 2);
        d.on_key(key(KeyCode::Char('k')));
        assert_eq!(d.selected, 1);
    }

    #[test]
    fn quit_asks_first_and_stops_the_grid_on_yes() {
        let mut d = board(1);
        assert_eq!(d.on_key(key(KeyCode::Char('q'))), Action::Redraw);
        assert_eq!(d.popup, Some(Popup::ConfirmQuit));
        assert_eq!(d.on_key(key(KeyCode::Char('n'))), Action::Redraw);
        assert_eq!(d.popup, None);
        d.on_key(key(KeyCode::Char('q')));
        assert_eq!(d.on_key(key(KeyCode::Char('y'))), Action::StopAndQuit);
        assert!(d.stopping);
    }

    #[test]
    fn ctrl_c_stops_without_asking_and_quit_is_immediate_when_over() {
        let mut d = board(1);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(d.on_key(ctrl_c), Action::StopAndQuit);
        let mut d = board(1);
        d.grid_over = true;
        assert_eq!(d.on_key(key(KeyCode::Char('q'))), Action::Quit);
    }

    #[test]
    fn watching_quits_at_once_and_cannot_pause() {
        let mut d = board(1);
        d.watching = true;
        assert_eq!(d.on_key(key(KeyCode::Char('p'))), Action::Redraw);
        assert!(!d.paused);
        assert_eq!(d.on_key(key(KeyCode::Char('q'))), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(d.on_key(ctrl_c), Action::Quit);
        assert!(!d.stopping);
    }

    #[test]
    fn pause_toggles_and_panes_cycle() {
        let mut d = board(1);
        assert_eq!(d.on_key(key(KeyCode::Char('p'))), Action::SetPaused(true));
        assert_eq!(d.on_key(key(KeyCode::Char('p'))), Action::SetPaused(false));
        d.on_key(key(KeyCode::Tab));
        assert_eq!(d.focus, Pane::Chart);
        d.on_key(key(KeyCode::Tab));
        d.on_key(key(KeyCode::Tab));
        assert_eq!(d.focus, Pane::Grid);
        d.on_key(key(KeyCode::BackTab));
        assert_eq!(d.focus, Pane::Scatter);
    }

    #[test]
    fn eta_follows_the_iteration_rate_and_resume_drops_newer_points() {
        let mut d = board(1);
        let t0 = Instant::now();
        d.apply(
            CellEvent::Started {
                cell: 0,
                total_iters: 100,
                resumed_from: None,
            },
            t0,
        );
        d.apply(
            CellEvent::Train {
                cell: 0,
                iter: 10,
                lr: 0.01,
                loss: 1.0,
            },
            t0 + Duration::from_secs(5),
        );
        assert_eq!(d.views[0].eta, Some(Duration::from_secs(45)));
        d.apply(
            CellEvent::Train {
                cell: 0,
                iter: 20,
                lr: 0.01,
                loss: 0.5,
            },
            t0 + Duration::from_secs(10),
        );
        d.apply(
            CellEvent::Started {
                cell: 0,
                total_iters: 100,
                resumed_from: Some(10),
            },
            t0,
        );
        assert_eq!(d.views[0].train, vec![(10.0, 1.0)]);
        assert_eq!(d.views[0].iter, 10);
    }
}
