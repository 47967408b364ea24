//! siamese-layers: the arithmetic of the siamese nets. `Blob`s, the `Layer` trait and Caffe's
//! layers, the compute `Backend` (CPU: GEMM + rayon), `Net` and `.caffemodel` I/O.

pub mod backend;
mod blob;
mod error;
pub mod filler;
pub mod layers;

#[cfg(test)]
mod gradient_check;

pub use backend::{Backend, CpuBackend};
pub use blob::Blob;
pub use error::LayerError;
pub use layers::Layer;
