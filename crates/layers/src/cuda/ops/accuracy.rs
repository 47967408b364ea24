//! Accuracy on the GPU: per-position correct and valid flags, then one-thread sums (no
//! gradient: backward does nothing, as on the CPU).

use super::{CudaLayer, CudaSupport, Scratch, ints, launch};
use crate::DeviceError;
use crate::cuda::{GpuBlob, GpuDevice};
use crate::layers::Accuracy;

impl CudaLayer for Accuracy {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Kernels
    }

    /// Scratch: 0 correct flags, 1 valid flags, 2 the count of valid positions (at least 1).
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
        let [correct, valid, count] = scratch.floats(gpu, [positions, positions, 1])?;
        let [o, c, i, k, n] = ints([outer, channels, inner, self.top_k, positions])?;
        let ignore_label = self.ignore_label;
        let (has_ignore, ignore) = (i32::from(ignore_label.is_some()), ignore_label.unwrap_or(0));
        let (x, label) = (&bottom[0].data, &bottom[1].data);
        launch!(gpu, "accuracy_forward", positions; x, label, &o, &c, &i, &k, &has_ignore,
            &ignore, &mut *correct, &mut *valid)?;
        let (mode, unused) = (1i32, 0.0f32);
        launch!(gpu, "loss_normalizer", 1; &*valid, &n, &mode, &unused, &unused, &mut *count)?;
        launch!(gpu, "divide_sum", 1; &*correct, &n, &*count, &mut top[0].data)
    }

    fn cuda_backward(
        &self,
        _: &GpuDevice,
        _: &mut Scratch,
        _: &[GpuBlob],
        _: &mut [GpuBlob],
        _: &[bool],
        _: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        Ok(())
    }

    fn cuda_labels(&self) -> Option<(usize, Option<i32>)> {
        Some((self.dims.1, self.ignore_label))
    }
}
