//! siamese-solver: the training loop. Update rules, learning-rate policies, Caffe snapshots
//! and resume; it emits events and prints nothing (front ends decide how to show them).

pub mod control;
pub mod device;
mod error;
pub mod lr_policy;
mod ranges;
pub mod smoothing;
pub mod snapshot;
pub mod solver;
pub mod update;

pub use control::{SolverAction, SolverControl};
pub use device::{DeviceChoice, DeviceDecision};
pub use error::SolverError;
pub use lr_policy::{LearningRate, LrPolicy};
pub use smoothing::SmoothedLoss;
pub use solver::{NetOutput, Solver, SolverEvent};
pub use update::{ParamSlot, Regularization, SolverType, UpdateRule};
