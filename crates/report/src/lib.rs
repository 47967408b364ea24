//! siamese-report: the run record every front end shares: the training log and the features
//! CSV (one writer and one reader each), embedding metrics, and Caffe's log lines as text.
//!
//! # The training log
//!
//! `iter,lr,train_loss,test_loss,elapsed_s`, one row per iteration that has something to log.
//! `iter` is Caffe's iteration number: the row's losses were computed with the weights after
//! `iter` updates, so a test at iteration N and the training loss of iteration N share a row
//! (Caffe tests at iteration N before it trains iteration N). Cells empty where that iteration
//! lacks a value; `elapsed_s` is the run's training time so far, in seconds (3 decimals).
//!
//! - `siamese train --log-csv`: a row for every displayed iteration (every `display`) with
//!   `lr` and Caffe's displayed `train_loss` (smoothed over the solver's `average_loss`, by
//!   default the iteration's own loss), plus `test_loss` at every test.
//! - A TUI cell (`runs/<experiment>/<cell>/log.csv`): a row for every iteration with its `lr`
//!   and own loss, and a row for every test. The cell's `CellEvent::Train { iter: n }` (n
//!   iterations done) is row `n - 1`, its `CellEvent::Test { iter: n }` row `n`. A cell writes
//!   each result as it comes ([`TrainingLog::write_through`]: a killed cell loses none), so a
//!   test and the training loss of the same iteration are two rows with the same `iter`, the
//!   test first. `elapsed_s` sums the cell's resumed runs.
//!
//! New columns may only be added after these five; readers ignore columns they do not know.
//!
//! # The features CSV
//!
//! `index,label,f0,f1,…`: one row per image, its index, digit (empty when unknown) and
//! features. Written by `siamese embed` and by every TUI cell (`features.csv`, the test
//! digits), read by `siamese plot --features`, `siamese eval` and the TUI.
//!
//! `file,f0,f1,…`: the same for image files (`siamese embed --images` of a folder or list of
//! PNG/JPEG files), keyed by each file's path; no labels, so not for `siamese eval`.

mod error;
pub mod features;
pub mod log_lines;
pub mod metrics;
pub mod training_log;

pub use error::ReportError;
pub use features::{
    FileFeatures, LabelledFeatures, features_csv, file_features_csv, read_features,
    read_file_features,
};
pub use training_log::{LOG_COLUMNS, LogRow, TrainingLog, parse_log_lines, read_training_log};
