//! `GpuGemm`: the row-major matrix products of `backend::Gemm` on cuBLAS (column-major), one
//! product or a strided batch of them, with the buffer lengths checked before the call.

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm as _, GemmConfig, StridedBatchedConfig};
use cudarc::driver::CudaSlice;

use super::GpuDevice;
use super::device::OrDevice;
use crate::DeviceError;
use crate::backend::Gemm;

/// A row-major `Gemm` repeated `batch` times with element strides between the matrices of
/// each operand (stride 0: the same matrix for every product).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GpuGemm {
    pub gemm: Gemm,
    pub batch: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
}

impl GpuGemm {
    /// One product.
    pub fn single(gemm: Gemm) -> Self {
        Self {
            gemm,
            batch: 1,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
        }
    }

    /// `c = alpha · op(a) · op(b) + beta · c` for each of the `batch` matrices.
    pub fn run(
        &self,
        gpu: &GpuDevice,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        c: &mut CudaSlice<f32>,
    ) -> Result<(), DeviceError> {
        let g = self.gemm;
        if self.batch == 0 || g.m == 0 || g.n == 0 {
            return Ok(());
        }
        self.check_len("a", a.len(), self.stride_a, g.m * g.k)?;
        self.check_len("b", b.len(), self.stride_b, g.k * g.n)?;
        self.check_len("c", c.len(), self.stride_c, g.m * g.n)?;
        let config = column_major(g)?;
        let blas = gpu.blas()?;
        // SAFETY: the lengths of a, b and c were checked above against every matrix the
        // call touches (leading dimensions are the row lengths of dense row-major matrices).
        let result = if self.batch == 1 {
            unsafe { blas.gemm(config, b, a, c) }
        } else {
            let batched = StridedBatchedConfig {
                gemm: config,
                batch_size: int(self.batch)?,
                // cuBLAS computes cᵀ = op(b)ᵀ·op(a)ᵀ: its "a" is our b.
                stride_a: self.stride_b as i64,
                stride_b: self.stride_a as i64,
                stride_c: self.stride_c as i64,
            };
            unsafe { blas.gemm_strided_batched(batched, b, a, c) }
        };
        result.or_device("cuBLAS sgemm")
    }

    fn check_len(
        &self,
        what: &str,
        len: usize,
        stride: usize,
        size: usize,
    ) -> Result<(), DeviceError> {
        let need = stride * (self.batch - 1) + size;
        if len < need {
            return Err(DeviceError::Failed(format!(
                "GEMM {:?} x{}: operand {what} has {len} floats, needs {need}",
                self.gemm, self.batch
            )));
        }
        Ok(())
    }
}

/// The cuBLAS configuration of row-major `c = op(a)·op(b)` computed as column-major
/// `cᵀ = op(b)ᵀ·op(a)ᵀ` (each row-major matrix read column-major is its transpose).
fn column_major(g: Gemm) -> Result<GemmConfig<f32>, DeviceError> {
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    Ok(GemmConfig {
        transa: op(g.trans_b),
        transb: op(g.trans_a),
        m: int(g.n)?,
        n: int(g.m)?,
        k: int(g.k)?,
        alpha: g.alpha,
        lda: int(if g.trans_b { g.k } else { g.n })?.max(1),
        ldb: int(if g.trans_a { g.m } else { g.k })?.max(1),
        beta: g.beta,
        ldc: int(g.n)?.max(1),
    })
}

/// A size as the `int` CUDA kernels and cuBLAS take.
pub(crate) fn int(n: usize) -> Result<i32, DeviceError> {
    i32::try_from(n).map_err(|_| DeviceError::TooLarge(n))
}
