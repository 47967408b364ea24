//! Slice on the GPU: one slice_copy launch per top, out forward and back into the bottom's
//! diff backward.

use cudarc::driver::CudaSlice;

use super::{CudaLayer, CudaSupport, Scratch, ints, launch};
use crate::DeviceError;
use crate::cuda::{GpuBlob, GpuDevice};
use crate::layers::Slice;

/// One slice_copy launch: `to_slice` copies piece `[offset, offset + piece)` of the axis of
/// `src` out; otherwise copies `src` (the piece) back into that range of `dst`.
fn slice_copy(
    gpu: &GpuDevice,
    src: &CudaSlice<f32>,
    dst: &mut CudaSlice<f32>,
    [outer, axis_len, piece, offset, inner]: [usize; 5],
    to_slice: bool,
) -> Result<(), DeviceError> {
    let (src_axis, dst_axis) = if to_slice {
        (axis_len, piece)
    } else {
        (piece, axis_len)
    };
    let [o, sa, da, off, i] = ints([outer, src_axis, dst_axis, offset, inner])?;
    let flag = i32::from(to_slice);
    launch!(gpu, "slice_copy", outer * piece * inner; src, dst, &o, &sa, &da, &off, &i, &flag)
}

impl CudaLayer for Slice {
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
        let mut offset = 0;
        for (t, &size) in top.iter_mut().zip(&self.sizes) {
            let geometry = [self.outer, self.axis_len, size, offset, self.inner];
            slice_copy(gpu, &bottom[0].data, &mut t.data, geometry, true)?;
            offset += size;
        }
        Ok(())
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
        let mut offset = 0;
        for (t, &size) in top.iter().zip(&self.sizes) {
            let geometry = [self.outer, self.axis_len, size, offset, self.inner];
            slice_copy(gpu, &t.diff, &mut bottom[0].diff, geometry, false)?;
            offset += size;
        }
        Ok(())
    }
}
