//! ContrastiveLoss, Softmax, SoftmaxWithLoss and Accuracy on the GPU: per-pair or
//! per-position kernels, then one-thread sums in a fixed order (deterministic).

use super::{GpuOp, Scratch, ints, launch};
use crate::LayerError;
use crate::cuda::{GpuBlob, GpuDevice};

/// (pairs, features per pair, margin, legacy) of a contrastive loss op.
fn contrastive_sizes(op: &GpuOp) -> Result<(usize, usize, f32, bool), LayerError> {
    match *op {
        GpuOp::ContrastiveLoss {
            num,
            channels,
            margin,
            legacy,
        } => Ok((num, channels, margin, legacy)),
        _ => Err(LayerError::device("internal: not a contrastive loss op")),
    }
}

/// Scratch 0 keeps each pair's squared distance for backward.
pub(super) fn contrastive_forward(
    op: &GpuOp,
    gpu: &GpuDevice,
    scratch: &mut Scratch,
    bottom: &[GpuBlob],
    top: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let (num, dim, margin, legacy) = contrastive_sizes(op)?;
    let [dist_sq, terms] = scratch.floats(gpu, [num, num])?;
    let [n, d] = ints([num, dim])?;
    let legacy = i32::from(legacy);
    let (a, b, sim) = (&bottom[0].data, &bottom[1].data, &bottom[2].data);
    launch!(gpu, "contrastive_forward", num; a, b, sim, &n, &d, &margin, &legacy, &mut *dist_sq, &mut *terms)?;
    // The CPU layer divides by num, then by 2.
    let scale = 0.5 / num.max(1) as f32;
    launch!(gpu, "sum_scaled", 1; &*terms, &n, &scale, &mut top[0].data)
}

pub(super) fn contrastive_backward(
    op: &GpuOp,
    gpu: &GpuDevice,
    scratch: &mut Scratch,
    top: &[GpuBlob],
    down: &[bool],
    bottom: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let (num, dim, margin, legacy) = contrastive_sizes(op)?;
    let [dist_sq] = scratch.floats(gpu, [num])?;
    let [n, d] = ints([num, dim])?;
    let legacy = i32::from(legacy);
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
        launch!(gpu, "contrastive_backward", num * dim; a, b, sim, &*dist_sq, &n, &d, &margin,
            &legacy, top_diff, &sign, out)?;
    }
    Ok(())
}

pub(super) fn softmax_forward(
    gpu: &GpuDevice,
    (outer, channels, inner): (usize, usize, usize),
    bottom: &[GpuBlob],
    top: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let [o, c, i] = ints([outer, channels, inner])?;
    launch!(gpu, "softmax_forward", outer * inner; &bottom[0].data, &o, &c, &i, &mut top[0].data)
}

pub(super) fn softmax_backward(
    gpu: &GpuDevice,
    (outer, channels, inner): (usize, usize, usize),
    top: &[GpuBlob],
    down: &[bool],
    bottom: &mut [GpuBlob],
) -> Result<(), LayerError> {
    if !down[0] {
        return Ok(());
    }
    let [o, c, i] = ints([outer, channels, inner])?;
    let (prob, dy) = (&top[0].data, &top[0].diff);
    launch!(gpu, "softmax_backward", outer * inner; prob, dy, &o, &c, &i, &mut bottom[0].diff)
}

/// (outer, channels, inner) of softmax-like ops.
type Dims = (usize, usize, usize);

/// (dims, ignore label, normalization mode) of a softmax loss op.
fn softmax_loss_sizes(op: &GpuOp) -> Result<(Dims, Option<i32>, i32), LayerError> {
    match *op {
        GpuOp::SoftmaxWithLoss {
            dims,
            ignore_label,
            normalization,
        } => Ok((dims, ignore_label, normalization)),
        _ => Err(LayerError::device("internal: not a softmax loss op")),
    }
}

/// Scratch: 0 probabilities, 1 per-position losses, 2 valid flags, 3 the normalizer.
pub(super) fn softmax_loss_forward(
    op: &GpuOp,
    gpu: &GpuDevice,
    scratch: &mut Scratch,
    bottom: &[GpuBlob],
    top: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let ((outer, channels, inner), ignore, mode) = softmax_loss_sizes(op)?;
    let positions = outer * inner;
    let [prob, losses, valid, norm] =
        scratch.floats(gpu, [outer * channels * inner, positions, positions, 1])?;
    let [o, c, i, n] = ints([outer, channels, inner, positions])?;
    let (has_ignore, ignore_label) = (i32::from(ignore.is_some()), ignore.unwrap_or(0));
    launch!(gpu, "softmax_forward", positions; &bottom[0].data, &o, &c, &i, &mut *prob)?;
    let label = &bottom[1].data;
    launch!(gpu, "softmax_loss_forward", positions; &*prob, label, &o, &c, &i, &has_ignore,
        &ignore_label, &mut *losses, &mut *valid)?;
    let (full, batch) = (positions as f32, outer as f32);
    launch!(gpu, "loss_normalizer", 1; &*valid, &n, &mode, &full, &batch, &mut *norm)?;
    launch!(gpu, "divide_sum", 1; &*losses, &n, &*norm, &mut top[0].data)?;
    if let Some(probs) = top.get_mut(1) {
        super::copy(gpu, prob, &mut probs.data, outer * channels * inner)?;
    }
    Ok(())
}

pub(super) fn softmax_loss_backward(
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
    let ((outer, channels, inner), ignore, _) = softmax_loss_sizes(op)?;
    let count = outer * channels * inner;
    let [prob, _, _, norm] = scratch.floats(gpu, [count, 0, 0, 1])?;
    let [o, c, i] = ints([outer, channels, inner])?;
    let (has_ignore, ignore_label) = (i32::from(ignore.is_some()), ignore.unwrap_or(0));
    let (scores, labels) = bottom.split_at_mut(1);
    launch!(gpu, "softmax_loss_backward", count; &*prob, &labels[0].data, &o, &c, &i,
        &has_ignore, &ignore_label, &top[0].diff, &*norm, &mut scores[0].diff)
}

/// Scratch: 0 correct flags, 1 valid flags, 2 the count of valid positions (at least 1).
pub(super) fn accuracy_forward(
    op: &GpuOp,
    gpu: &GpuDevice,
    scratch: &mut Scratch,
    bottom: &[GpuBlob],
    top: &mut [GpuBlob],
) -> Result<(), LayerError> {
    let GpuOp::Accuracy {
        dims: (outer, channels, inner),
        top_k,
        ignore_label,
    } = *op
    else {
        return Err(LayerError::device("internal: not an accuracy op"));
    };
    let positions = outer * inner;
    let [correct, valid, count] = scratch.floats(gpu, [positions, positions, 1])?;
    let [o, c, i, k, n] = ints([outer, channels, inner, top_k, positions])?;
    let (has_ignore, ignore) = (i32::from(ignore_label.is_some()), ignore_label.unwrap_or(0));
    let (x, label) = (&bottom[0].data, &bottom[1].data);
    launch!(gpu, "accuracy_forward", positions; x, label, &o, &c, &i, &k, &has_ignore, &ignore,
        &mut *correct, &mut *valid)?;
    let (mode, unused) = (1i32, 0.0f32);
    launch!(gpu, "loss_normalizer", 1; &*valid, &n, &mode, &unused, &unused, &mut *count)?;
    launch!(gpu, "divide_sum", 1; &*correct, &n, &*count, &mut top[0].data)
}
