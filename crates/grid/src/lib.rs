//! siamese-grid: experiment grids without a screen. Experiment files, their cells, the runner
//! and its training engine, each cell's files, summaries, Slurm job arrays, and the follower
//! that reads a runs folder back as events. Front ends (siamese-tui) show what it reports.

pub mod cell_folder;
pub mod cell_log;
pub mod cell_progress;
pub mod cell_trainer;
pub mod cells;
pub mod claim;
pub mod experiment;
pub mod follow;
pub mod manifest;
pub mod overrides;
pub mod pair_dbs;
pub mod ranking;
pub mod report;
pub mod run_cell;
pub mod runner;
pub mod schedule;
pub mod search;
pub mod slurm;
pub mod summary;
pub mod train;
