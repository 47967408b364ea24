//! siamese-solver: see ARCHITECTURE.md.

pub mod metrics;
