//! Split on the GPU: device copies forward, the top diffs summed in top order backward.

use super::{CudaLayer, CudaSupport, Scratch, add_into, copy};
use crate::DeviceError;
use crate::cuda::{GpuBlob, GpuDevice};
use crate::layers::Split;

impl CudaLayer for Split {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Kernels
    }

    fn cuda_forward(
        &self,
        gpu: &GpuDevice,
        _: &mut Scratch,
        bottom: &[GpuBlob],
        _: &[GpuBlob],
        top: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let n = bottom[0].count();
        top.iter_mut()
            .try_for_each(|t| copy(gpu, &bottom[0].data, &mut t.data, n))
    }

    fn cuda_backward(
        &self,
        gpu: &GpuDevice,
        _: &mut Scratch,
        top: &[GpuBlob],
        _: &mut [GpuBlob],
        down: &[bool],
        bottom: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        if !down[0] {
            return Ok(());
        }
        let n = bottom[0].count();
        let diff = &mut bottom[0].diff;
        copy(gpu, &top[0].diff, diff, n)?;
        top[1..]
            .iter()
            .try_for_each(|t| add_into(gpu, &t.diff, diff, n))
    }
}
