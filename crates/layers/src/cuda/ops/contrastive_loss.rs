//! ContrastiveLoss on the GPU: one thread per pair, then a one-thread sum in pair order
//! (deterministic); scratch 0 keeps each pair's squared distance for backward.

use super::{CudaLayer, CudaSupport, Scratch, ints, launch};
use crate::DeviceError;
use crate::cuda::{GpuBlob, GpuDevice};
use crate::layers::ContrastiveLoss;

impl CudaLayer for ContrastiveLoss {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Kernels
    }

    fn cuda_forward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        bottom: &[GpuBlob],
        _: &[GpuBlob],
        top: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let (num, margin) = (self.num, self.margin);
        let [dist_sq, terms] = scratch.floats(gpu, [num, num])?;
        let [n, d] = ints([num, self.channels])?;
        let legacy = i32::from(self.legacy);
        let (a, b, sim) = (&bottom[0].data, &bottom[1].data, &bottom[2].data);
        launch!(gpu, "contrastive_forward", num; a, b, sim, &n, &d, &margin, &legacy,
            &mut *dist_sq, &mut *terms)?;
        // The CPU layer divides by num, then by 2.
        let scale = 0.5 / num.max(1) as f32;
        launch!(gpu, "sum_scaled", 1; &*terms, &n, &scale, &mut top[0].data)
    }

    fn cuda_backward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        top: &[GpuBlob],
        _: &mut [GpuBlob],
        down: &[bool],
        bottom: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let (num, margin) = (self.num, self.margin);
        let [dist_sq] = scratch.floats(gpu, [num])?;
        let [n, d] = ints([num, self.channels])?;
        let legacy = i32::from(self.legacy);
        let top_diff = &top[0].diff;
        for (side, sign) in [(0usize, 1.0f32), (1, -1.0)] {
            if !down[side] {
                continue;
            }
            let (first, rest) = bottom.split_at_mut(1);
            let (second, labels) = rest.split_at_mut(1);
            let (a, b, sim) = (&first[0].data, &second[0].data, &labels[0].data);
            let out = if side == 0 {
                &mut first[0].diff
            } else {
                &mut second[0].diff
            };
            launch!(gpu, "contrastive_backward", num * self.channels; a, b, sim, &*dist_sq, &n,
                &d, &margin, &legacy, top_diff, &sign, out)?;
        }
        Ok(())
    }
}
