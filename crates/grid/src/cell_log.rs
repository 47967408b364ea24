//! A cell's log.csv: siamese-report's training log with the cell's events mapped onto its rows
//! (`Train { iter: n }` is row `n - 1`, `Test { iter: n }` row `n`; see siamese_report's docs).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use siamese_report::{LogRow, ReportError, TrainingLog};

use crate::cell_folder::write_atomic;
use crate::cell_trainer::CellEvent;

pub const LOG_FILE: &str = "log.csv";

/// The row of a `Train` event after `iter` iterations: Caffe's number of that iteration.
fn train_row(iter: u32) -> i32 {
    i32::try_from(iter.saturating_sub(1)).unwrap_or(i32::MAX)
}

/// The row of a `Test` event after `iter` iterations.
fn test_row(iter: u32) -> i32 {
    i32::try_from(iter).unwrap_or(i32::MAX)
}

/// The events a row of `cell`'s log stands for, in the order they happened: its test, then
/// its training iteration. (The test's named outputs are not logged.)
pub fn row_events(cell: usize, row: &LogRow) -> Vec<CellEvent> {
    let Ok(iter) = u32::try_from(row.iter) else {
        return Vec::new();
    };
    let test = row.test_loss.map(|loss| CellEvent::Test {
        cell,
        iter,
        loss,
        outputs: Vec::new(),
    });
    let train = row.train_loss.map(|loss| CellEvent::Train {
        cell,
        iter: iter.saturating_add(1),
        lr: row.lr.unwrap_or(0.0),
        loss,
    });
    test.into_iter().chain(train).collect()
}

/// Iterations done once a row's events have happened.
pub fn iterations_done(row: &LogRow) -> u32 {
    let iter = u32::try_from(row.iter).unwrap_or(0);
    if row.train_loss.is_some() {
        iter.saturating_add(1)
    } else {
        iter
    }
}

/// The rows of log.csv an interrupted cell keeps when it resumes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeptLog {
    pub rows: Vec<LogRow>,
}

impl KeptLog {
    /// What a run resuming after `resume_iter` iterations keeps of `rows`: every row before
    /// that iteration, and that iteration's test (its training iteration runs again).
    pub fn resuming(rows: Vec<LogRow>, resume_iter: u32) -> KeptLog {
        let at = test_row(resume_iter);
        let rows = rows
            .into_iter()
            .filter(|r| r.iter < at || (r.iter == at && r.test_loss.is_some()))
            .map(|r| {
                if r.iter == at {
                    LogRow {
                        lr: None,
                        train_loss: None,
                        ..r
                    }
                } else {
                    r
                }
            })
            .collect();
        KeptLog { rows }
    }

    /// The cell's training time logged so far.
    pub fn seconds(&self) -> f64 {
        self.rows.last().map_or(0.0, |r| r.elapsed_s)
    }
}

/// The losses a finished cell's summary is computed from, in log order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LossTally {
    train: Vec<f32>,
    last_test: Option<f32>,
}

impl LossTally {
    fn kept(kept: &KeptLog) -> LossTally {
        let mut tally = LossTally::default();
        for row in &kept.rows {
            tally.train.extend(row.train_loss);
            tally.last_test = row.test_loss.or(tally.last_test);
        }
        tally
    }

    /// The mean of the last (up to) `window` training losses (NaN when none).
    pub fn mean_train_loss(&self, window: usize) -> f64 {
        let tail = &self.train[self.train.len().saturating_sub(window)..];
        if tail.is_empty() {
            return f64::NAN;
        }
        tail.iter().map(|&l| f64::from(l)).sum::<f64>() / tail.len() as f64
    }

    /// The last test loss (NaN when no test ran).
    pub fn last_test_loss(&self) -> f64 {
        self.last_test.map_or(f64::NAN, f64::from)
    }
}

/// log.csv of a running cell: events in, a row out for each at once (written through and
/// flushed, so watchers see it and a kill loses nothing).
pub struct CellLog {
    log: TrainingLog<File>,
    path: PathBuf,
    tally: LossTally,
    first_error: Option<ReportError>,
}

impl CellLog {
    /// Starts `dir/log.csv` with the `kept` rows (written to a temporary file and renamed,
    /// so a watcher never sees half of it), to be continued.
    pub fn start(dir: &Path, kept: &KeptLog) -> Result<CellLog, ReportError> {
        let path = dir.join(LOG_FILE);
        let io = |error| ReportError::Io {
            path: path.clone(),
            error,
        };
        let mut head = TrainingLog::new(Vec::new(), &path)?;
        for row in &kept.rows {
            head.row(row)?;
        }
        write_atomic(&path, &head.into_inner()?).map_err(io)?;
        let file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(CellLog {
            log: TrainingLog::appending(file, &path).write_through(),
            tally: LossTally::kept(kept),
            path,
            first_error: None,
        })
    }

    /// Logs a `Train` or `Test` event (others are not logged) at `seconds` of training time.
    /// A failed write is kept and returned by [`CellLog::finish`].
    pub fn record(&mut self, event: &CellEvent, seconds: f64) {
        let written = match event {
            CellEvent::Train { iter, lr, loss, .. } => {
                self.tally.train.push(*loss);
                self.log.train(train_row(*iter), *lr, *loss, seconds)
            }
            CellEvent::Test { iter, loss, .. } => {
                self.tally.last_test = Some(*loss);
                self.log.test(test_row(*iter), *loss, seconds)
            }
            _ => return,
        };
        if let Err(e) = written.and_then(|()| self.log.flush()) {
            self.first_error.get_or_insert(e);
        }
    }

    /// Writes the last row; the losses logged, or the first write error.
    pub fn finish(mut self) -> Result<LossTally, ReportError> {
        if let Some(e) = self.first_error.take() {
            return Err(e);
        }
        self.log.finish()?;
        Ok(self.tally)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(iter: u32, loss: f32) -> CellEvent {
        CellEvent::Train {
            cell: 0,
            iter,
            lr: 0.01,
            loss,
        }
    }

    fn test(iter: u32, loss: f32) -> CellEvent {
        CellEvent::Test {
            cell: 0,
            iter,
            loss,
            outputs: Vec::new(),
        }
    }

    /// Train and test events go to `siamese train`'s columns; the rows give them back.
    #[test]
    fn events_map_onto_rows_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let events = [
            train(1, 0.5),
            train(2, 0.25),
            test(2, 0.375),
            train(3, 0.125),
            test(3, 0.0625),
        ];
        let mut log = CellLog::start(dir.path(), &KeptLog::default()).unwrap();
        for (i, e) in events.iter().enumerate() {
            log.record(e, i as f64);
        }
        let tally = log.finish().unwrap();
        let text = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(
            text,
            "iter,lr,train_loss,test_loss,elapsed_s\n\
             0,0.01,0.5,,0.000\n\
             1,0.01,0.25,,1.000\n\
             2,,,0.375,2.000\n\
             2,0.01,0.125,,3.000\n\
             3,,,0.0625,4.000\n"
        );
        let rows = siamese_report::read_training_log(&dir.path().join(LOG_FILE)).unwrap();
        let back: Vec<CellEvent> = rows.iter().flat_map(|r| row_events(0, r)).collect();
        assert_eq!(back, events);
        assert_eq!(
            rows.iter().map(iterations_done).collect::<Vec<_>>(),
            [1, 2, 2, 3, 3]
        );
        assert_eq!(tally.mean_train_loss(2), (0.25 + 0.125) / 2.0);
        assert_eq!(tally.last_test_loss(), 0.0625);
    }

    /// Every result is on disk as soon as it is recorded: a cell killed right after a test
    /// and a snapshot (SIGKILL, no unwinding) loses neither.
    #[test]
    fn a_recorded_result_is_on_disk_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CellLog::start(dir.path(), &KeptLog::default()).unwrap();
        let path = dir.path().join(LOG_FILE);
        let on_disk = || {
            let rows = siamese_report::parse_log_lines(&fs::read(&path).unwrap());
            rows.iter()
                .flat_map(|r| row_events(0, r))
                .collect::<Vec<_>>()
        };
        log.record(&train(1, 0.5), 0.1);
        assert_eq!(on_disk(), [train(1, 0.5)]);
        log.record(&test(1, 0.25), 0.2);
        assert_eq!(on_disk(), [train(1, 0.5), test(1, 0.25)]);
        std::mem::forget(log); // as if killed: no finish, no drop
    }

    /// A run resumed at a snapshot after 2 iterations keeps rows 0 and 1 and the test of row
    /// 2, whose training iteration (event 3) it runs again: no row twice, none missing.
    #[test]
    fn a_resumed_log_keeps_what_came_before_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let first = [train(1, 0.5), train(2, 0.25), test(2, 0.375), train(3, 0.2)];
        let mut log = CellLog::start(dir.path(), &KeptLog::default()).unwrap();
        for e in &first {
            log.record(e, 1.0);
        }
        log.finish().unwrap();
        let rows = siamese_report::read_training_log(&dir.path().join(LOG_FILE)).unwrap();
        let kept = KeptLog::resuming(rows, 2);
        assert_eq!(kept.rows.len(), 3);
        assert_eq!(kept.rows[2].test_loss, Some(0.375));
        let mut log = CellLog::start(dir.path(), &kept).unwrap();
        log.record(&train(3, 0.125), 2.0);
        let tally = log.finish().unwrap();
        let rows = siamese_report::read_training_log(&dir.path().join(LOG_FILE)).unwrap();
        let back: Vec<CellEvent> = rows.iter().flat_map(|r| row_events(0, r)).collect();
        assert_eq!(
            back,
            [
                train(1, 0.5),
                train(2, 0.25),
                test(2, 0.375),
                train(3, 0.125)
            ]
        );
        assert_eq!(tally.mean_train_loss(50), (0.5 + 0.25 + 0.125) / 3.0);
        assert_eq!(tally.last_test_loss(), 0.375);
    }
}
