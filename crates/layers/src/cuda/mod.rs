//! The CUDA backend (feature `cuda`): one shared `GpuDevice` per ordinal (context, stream,
//! cuBLAS, NVRTC-compiled kernels.cu), device blobs, and each layer's `CudaLayer` code.

mod blob;
mod device;
mod gemm;
mod ops;
mod sgd;
#[cfg(test)]
mod tests;

pub(crate) use blob::{GpuBlob, alloc_zeros, download_floats, upload_floats};
pub(crate) use device::GpuDevice;
pub(crate) use gemm::GpuGemm;
pub(crate) use ops::{CudaLayer, CudaSupport, Scratch, fill};
pub(crate) use sgd::SgdStep;
