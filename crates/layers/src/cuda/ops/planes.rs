//! Pooling, ReLU, Slice and Split on the GPU: element- and plane-wise kernels, one launch
//! per blob.

use cudarc::driver::CudaSlice;

use super::{GpuOp, Scratch, add_into, copy, ints, launch};
use crate::LayerError;
use crate::backend::PoolGeometry;
use crate::cuda::{GpuBlob, GpuDevice};

/// (geometry, planes, max?) of a pooling op.
fn pool_sizes(op: &GpuOp) -> Result<(PoolGeometry, usize, bool), LayerError> {
    match *op {
        GpuOp::Pooling {
            geometry,
            planes,
            max,
        } => Ok((geometry, planes, max)),
        _ => Err(LayerError::device("internal: not a pooling op")),
    }
}

/// planes, height, width, pooled_h, pooled_w, kernel_h, kernel_w, stride_h, stride_w, pad_h,
/// pad_w: the geometry arguments of the pooling kernels, in their order.
fn pool_args(g: &PoolGeometry, planes: usize) -> Result<[i32; 11], LayerError> {
    let [ph, pw] = g.output_size().unwrap_or([0, 0]);
    ints([
        planes,
        g.height,
        g.width,
        ph,
        pw,
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.pad[0],
        g.pad[1],
    ])
}

pub(super) fn pool_forward(
    op: &GpuOp,
    gpu: &GpuDevice,
    scratch: &mut Scratch,
    bottom: &[GpuBlob],
    top: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let (g, planes, max) = pool_sizes(op)?;
    let [p, h, w, ph, pw, kh, kw, sh, sw, padh, padw] = pool_args(&g, planes)?;
    let (input, out) = (&bottom[0].data, &mut top[0].data);
    let outputs = planes * g.out_spatial();
    if max {
        let argmax = scratch.argmax(gpu, outputs)?;
        launch!(gpu, "max_pool_forward", outputs; input, &p, &h, &w, &ph, &pw, &kh, &kw, &sh, &sw,
            &padh, &padw, out, argmax)
    } else {
        launch!(gpu, "ave_pool_forward", outputs; input, &p, &h, &w, &ph, &pw, &kh, &kw, &sh, &sw,
            &padh, &padw, out)
    }
}

pub(super) fn pool_backward(
    op: &GpuOp,
    gpu: &GpuDevice,
    scratch: &mut Scratch,
    top: &[GpuBlob],
    down: &[bool],
    bottom: &mut [GpuBlob],
) -> Result<(), LayerError> {
    if !down[0] {
        return Ok(());
    }
    let (g, planes, max) = pool_sizes(op)?;
    let [p, h, w, ph, pw, kh, kw, sh, sw, padh, padw] = pool_args(&g, planes)?;
    let (dy, dx) = (&top[0].diff, &mut bottom[0].diff);
    let inputs = planes * g.height * g.width;
    if max {
        let argmax = &*scratch.argmax(gpu, planes * g.out_spatial())?;
        launch!(gpu, "max_pool_backward", inputs; dy, argmax, &p, &h, &w, &ph, &pw, &kh, &kw,
            &sh, &sw, &padh, &padw, dx)
    } else {
        launch!(gpu, "ave_pool_backward", inputs; dy, &p, &h, &w, &ph, &pw, &kh, &kw, &sh, &sw,
            &padh, &padw, dx)
    }
}

pub(super) fn relu_forward(
    gpu: &GpuDevice,
    slope: f32,
    bottom: &[GpuBlob],
    top: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let count = bottom[0].count();
    let [n] = ints([count])?;
    launch!(gpu, "relu_forward", count; &bottom[0].data, &mut top[0].data, &n, &slope)
}

pub(super) fn relu_backward(
    gpu: &GpuDevice,
    slope: f32,
    top: &[GpuBlob],
    down: &[bool],
    bottom: &mut [GpuBlob],
) -> Result<(), LayerError> {
    if !down[0] {
        return Ok(());
    }
    let b = &mut bottom[0];
    let count = b.count();
    let [n] = ints([count])?;
    launch!(gpu, "relu_backward", count; &b.data, &top[0].diff, &mut b.diff, &n, &slope)
}

/// (outer, inner, axis length, top sizes) of a slice op.
fn slice_sizes<'a>(op: &GpuOp<'a>) -> Result<(usize, usize, usize, &'a [usize]), LayerError> {
    match *op {
        GpuOp::Slice {
            outer,
            inner,
            axis_len,
            sizes,
        } => Ok((outer, inner, axis_len, sizes)),
        _ => Err(LayerError::device("internal: not a slice op")),
    }
}

/// One slice_copy launch: `to_slice` copies piece `[offset, offset + piece)` of the axis of
/// `src` out; otherwise copies `src` (the piece) back into that range of `dst`.
#[allow(clippy::too_many_arguments)]
fn slice_copy(
    gpu: &GpuDevice,
    src: &CudaSlice<f32>,
    dst: &mut CudaSlice<f32>,
    [outer, axis_len, piece, offset, inner]: [usize; 5],
    to_slice: bool,
) -> Result<(), LayerError> {
    let (src_axis, dst_axis) = if to_slice {
        (axis_len, piece)
    } else {
        (piece, axis_len)
    };
    let [o, sa, da, off, i] = ints([outer, src_axis, dst_axis, offset, inner])?;
    let flag = i32::from(to_slice);
    launch!(gpu, "slice_copy", outer * piece * inner; src, dst, &o, &sa, &da, &off, &i, &flag)
}

pub(super) fn slice_forward(
    op: &GpuOp,
    gpu: &GpuDevice,
    bottom: &[GpuBlob],
    top: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let (outer, inner, axis_len, sizes) = slice_sizes(op)?;
    let mut offset = 0;
    for (t, &size) in top.iter_mut().zip(sizes) {
        let geometry = [outer, axis_len, size, offset, inner];
        slice_copy(gpu, &bottom[0].data, &mut t.data, geometry, true)?;
        offset += size;
    }
    Ok(())
}

pub(super) fn slice_backward(
    op: &GpuOp,
    gpu: &GpuDevice,
    top: &[GpuBlob],
    down: &[bool],
    bottom: &mut [GpuBlob],
) -> Result<(), LayerError> {
    if !down[0] {
        return Ok(());
    }
    let (outer, inner, axis_len, sizes) = slice_sizes(op)?;
    let mut offset = 0;
    for (t, &size) in top.iter().zip(sizes) {
        let geometry = [outer, axis_len, size, offset, inner];
        slice_copy(gpu, &t.diff, &mut bottom[0].diff, geometry, false)?;
        offset += size;
    }
    Ok(())
}

pub(super) fn split_forward(
    gpu: &GpuDevice,
    bottom: &[GpuBlob],
    top: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let n = bottom[0].count();
    top.iter_mut()
        .try_for_each(|t| copy(gpu, &bottom[0].data, &mut t.data, n))
}

pub(super) fn split_backward(
    gpu: &GpuDevice,
    top: &[GpuBlob],
    down: &[bool],
    bottom: &mut [GpuBlob],
) -> Result<(), LayerError> {
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
