//! siamese-layers: the arithmetic of the siamese nets. `Blob`s, the `Layer` trait and Caffe's
//! layers, the compute `Backend` (CPU: GEMM + rayon), `Net` and `.caffemodel` I/O.

pub mod backend;
mod blob;
mod caffemodel;
#[cfg(feature = "cuda")]
mod cuda;
mod device;
pub mod embed;
mod error;
pub mod filler;
pub mod layers;
pub mod memory;
mod net;

#[cfg(test)]
mod gradient_check;

// Link OpenBLAS (the system library) for the `openblas` feature's cblas_sgemm.
#[cfg(feature = "openblas")]
use blas_src as _;
#[cfg(feature = "openblas")]
use openblas_src as _;

pub use backend::{Backend, CpuBackend};
pub use blob::{AllocError, Blob};
pub use caffemodel::{blob_to_proto, copy_proto_into, proto_fits, proto_shape};
pub use device::{Device, probe_gpu};
pub use error::{DeviceError, LayerError};
pub use layers::Layer;
pub use memory::{MemoryError, MemoryPlan};
pub use net::{FusedSgd, LearnableParam, Net};
