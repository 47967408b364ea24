//! ReLU (leaky with `negative_slope`) on the GPU: one element per thread.

use super::{CudaLayer, CudaSupport, Scratch, ints, launch};
use crate::DeviceError;
use crate::cuda::{GpuBlob, GpuDevice};
use crate::layers::ReLU;

impl CudaLayer for ReLU {
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
        let count = bottom[0].count();
        let [n] = ints([count])?;
        let slope = self.slope;
        launch!(gpu, "relu_forward", count; &bottom[0].data, &mut top[0].data, &n, &slope)
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
        let b = &mut bottom[0];
        let count = b.count();
        let [n] = ints([count])?;
        let slope = self.slope;
        launch!(gpu, "relu_backward", count; &b.data, &top[0].diff, &mut b.diff, &n, &slope)
    }
}
