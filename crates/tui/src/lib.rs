//! siamese-tui: the front end of siamese-grid. The ratatui screen (fed by the runner's
//! `CellEvent`s, or by the runs-folder follower for `--watch`), headless lines and the terminal.

pub mod dashboard;
pub mod headless;
pub mod scatter;
pub mod screen;
pub mod terminal;
pub mod watch;
