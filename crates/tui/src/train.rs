//! The training engine behind `siamese-tui`: the `CellTrainer` built on siamese-solver.
//! It is not wired yet; until it is, running a grid stops with a clear error.

use crate::cell_trainer::CellTrainer;

/// The trainer the binary runs cells with.
pub fn trainer() -> anyhow::Result<Box<dyn CellTrainer>> {
    anyhow::bail!(
        "training engine not built yet: siamese-tui checks experiment files, but cannot train \
         until the siamese-solver CellTrainer is wired into crates/tui/src/train.rs"
    )
}
