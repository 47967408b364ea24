//! InnerProduct on the GPU: one cuBLAS product forward, two backward; bias by kernel.

use super::{CudaLayer, CudaSupport, Scratch, accumulate_rows, add_bias};
use crate::DeviceError;
use crate::backend::Gemm;
use crate::cuda::{GpuBlob, GpuDevice, GpuGemm};
use crate::layers::InnerProduct;

impl CudaLayer for InnerProduct {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Kernels
    }

    fn cuda_forward(
        &self,
        gpu: &GpuDevice,
        _: &mut Scratch,
        bottom: &[GpuBlob],
        params: &[GpuBlob],
        top: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let (m, k, n) = (self.rows, self.inputs, self.num_output);
        let product = GpuGemm::single(Gemm::new(false, !self.transpose, m, n, k));
        product.run(gpu, &bottom[0].data, &params[0].data, &mut top[0].data)?;
        if self.bias && m * n > 0 {
            add_bias(gpu, &mut top[0].data, &params[1].data, [m, n, 1])?;
        }
        Ok(())
    }

    fn cuda_backward(
        &self,
        gpu: &GpuDevice,
        _: &mut Scratch,
        top: &[GpuBlob],
        params: &mut [GpuBlob],
        down: &[bool],
        bottom: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let (m, k, n) = (self.rows, self.inputs, self.num_output);
        let dy = &top[0].diff;
        let (x, w) = (&bottom[0].data, &mut params[0]);
        if self.transpose {
            let g = GpuGemm::single(Gemm::new(true, false, k, n, m).accumulate());
            g.run(gpu, x, dy, &mut w.diff)?;
        } else {
            let g = GpuGemm::single(Gemm::new(true, false, n, k, m).accumulate());
            g.run(gpu, dy, x, &mut w.diff)?;
        }
        if self.bias && n > 0 {
            accumulate_rows(gpu, dy, m, n, &mut params[1].diff)?;
        }
        if down[0] {
            let g = GpuGemm::single(Gemm::new(false, self.transpose, m, k, n));
            g.run(gpu, dy, &params[0].data, &mut bottom[0].diff)?;
        }
        Ok(())
    }
}
