//! Softmax and SoftmaxWithLoss on the GPU: one thread per position, then one-thread sums in
//! a fixed order (deterministic).

use super::{CudaLayer, CudaSupport, Scratch, ints, launch};
use crate::DeviceError;
use crate::cuda::{GpuBlob, GpuDevice};
use crate::layers::{Softmax, SoftmaxWithLoss};

impl CudaLayer for Softmax {
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
        let (outer, channels, inner) = self.dims;
        let [o, c, i] = ints([outer, channels, inner])?;
        launch!(gpu, "softmax_forward", outer * inner; &bottom[0].data, &o, &c, &i,
            &mut top[0].data)
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
        let (outer, channels, inner) = self.dims;
        let [o, c, i] = ints([outer, channels, inner])?;
        let (prob, dy) = (&top[0].data, &top[0].diff);
        launch!(gpu, "softmax_backward", outer * inner; prob, dy, &o, &c, &i,
            &mut bottom[0].diff)
    }
}

impl CudaLayer for SoftmaxWithLoss {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Kernels
    }

    /// Scratch: 0 probabilities, 1 per-position losses, 2 valid flags, 3 the normalizer.
    fn cuda_forward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        bottom: &[GpuBlob],
        _: &[GpuBlob],
        top: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let (outer, channels, inner) = self.dims;
        let positions = outer * inner;
        let [prob, losses, valid, norm] =
            scratch.floats(gpu, [outer * channels * inner, positions, positions, 1])?;
        let [o, c, i, n] = ints([outer, channels, inner, positions])?;
        let ignore = self.ignore_label;
        let (has_ignore, ignore_label) = (i32::from(ignore.is_some()), ignore.unwrap_or(0));
        launch!(gpu, "softmax_forward", positions; &bottom[0].data, &o, &c, &i, &mut *prob)?;
        let label = &bottom[1].data;
        launch!(gpu, "softmax_loss_forward", positions; &*prob, label, &o, &c, &i, &has_ignore,
            &ignore_label, &mut *losses, &mut *valid)?;
        // Caffe's NormalizationMode as the kernel takes it: 0 FULL, 1 VALID, 2 BATCH_SIZE, 3 NONE.
        let mode = self.normalization as i32;
        let (full, batch) = (positions as f32, outer as f32);
        launch!(gpu, "loss_normalizer", 1; &*valid, &n, &mode, &full, &batch, &mut *norm)?;
        launch!(gpu, "divide_sum", 1; &*losses, &n, &*norm, &mut top[0].data)?;
        if let Some(probs) = top.get_mut(1) {
            super::copy(gpu, prob, &mut probs.data, outer * channels * inner)?;
        }
        Ok(())
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
        if !down[0] {
            return Ok(());
        }
        let (outer, channels, inner) = self.dims;
        let count = outer * channels * inner;
        let [prob, _, _, norm] = scratch.floats(gpu, [count, 0, 0, 1])?;
        let [o, c, i] = ints([outer, channels, inner])?;
        let ignore = self.ignore_label;
        let (has_ignore, ignore_label) = (i32::from(ignore.is_some()), ignore.unwrap_or(0));
        let (scores, labels) = bottom.split_at_mut(1);
        launch!(gpu, "softmax_loss_backward", count; &*prob, &labels[0].data, &o, &c, &i,
            &has_ignore, &ignore_label, &top[0].diff, &*norm, &mut scores[0].diff)
    }

    fn cuda_labels(&self) -> Option<(usize, Option<i32>)> {
        Some((self.dims.1, self.ignore_label))
    }
}
