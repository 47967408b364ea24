//! The `Layer` trait and Caffe's layers. Layers see their bottoms, tops and parameter blobs as
//! plain slices (the `Net` lends them), so each can be built and tested on its own.

mod accuracy;
mod contrastive_loss;
mod convolution;
mod data;
mod dropout;
mod euclidean_loss;
mod inner_product;
mod input;
mod pooling;
mod relu;
mod slice;
mod softmax;
mod split;

pub use accuracy::Accuracy;
pub use contrastive_loss::ContrastiveLoss;
pub use convolution::Convolution;
pub use data::DataLayer;
pub use dropout::Dropout;
pub use euclidean_loss::EuclideanLoss;
pub use inner_product::InnerProduct;
pub use input::Input;
pub use pooling::Pooling;
pub use relu::ReLU;
pub use slice::Slice;
pub use softmax::{Softmax, SoftmaxWithLoss};
pub use split::Split;

use crate::{Backend, Blob, LayerError};

/// One Caffe layer. The `Net` calls `setup` once, then `reshape` + `forward` each iteration and
/// `backward` when gradients are needed. Conventions (Caffe's):
/// - `backward` overwrites the diff of every bottom whose `propagate_down` is true and adds the
///   parameter gradients to the parameters' diffs (shared parameters accumulate);
/// - a loss layer scales its gradient by its top's diff (the loss weight);
/// - tops never alias bottoms (the `Net` gives in-place layers a separate top blob).
pub trait Layer: Send {
    /// Caffe's type name: `"Convolution"`, `"ContrastiveLoss"`.
    fn kind(&self) -> &'static str;

    /// Checks the number and shapes of bottoms (and the number of tops) and returns the shapes
    /// of the parameter blobs the layer needs, in Caffe's order (weights, then bias).
    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError>;

    /// Shapes the tops (and internal buffers) for the bottoms' current shapes. Allocates only
    /// when a buffer grows beyond anything seen before.
    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError>;

    /// Computes the tops from the bottoms and parameters.
    fn forward(
        &mut self,
        backend: &dyn Backend,
        bottom: &[Blob],
        params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError>;

    /// Computes bottom diffs (where `propagate_down`) and accumulates parameter diffs from the
    /// tops' diffs. Layers without a gradient leave everything untouched.
    fn backward(
        &mut self,
        backend: &dyn Backend,
        top: &[Blob],
        params: &mut [Blob],
        propagate_down: &[bool],
        bottom: &mut [Blob],
    );

    /// Whether bottom `index` can take a gradient (false for labels, and for layers like
    /// Accuracy that have none).
    fn allows_backward(&self, _index: usize) -> bool {
        true
    }

    /// Floating-point operations of one forward pass at the current shapes (the dominant
    /// products; 0 for layers that only move data).
    fn forward_flops(&self) -> u64 {
        0
    }

    /// The layer's GPU computation at its current shapes (valid after `reshape`); `None` when
    /// it has no CUDA implementation.
    #[cfg(feature = "cuda")]
    fn gpu_op(&self) -> Option<crate::GpuOp<'_>> {
        None
    }

    /// For Input layers: sets the shape of top `index`, returning false for other layers.
    fn set_input_shape(&mut self, _index: usize, _shape: &[usize]) -> bool {
        false
    }

    /// For data layers: the record the next batch starts at.
    fn data_position(&self) -> Option<usize> {
        None
    }

    /// For data layers: makes the next batch start at record `position`.
    fn seek_data(&mut self, _position: usize) -> Result<(), LayerError> {
        Ok(())
    }
}

/// Fails unless the layer got `bottoms` bottoms and `tops` tops (each a range).
pub(crate) fn check_arity(
    name: &str,
    kind: &str,
    bottom: usize,
    bottoms: std::ops::RangeInclusive<usize>,
    top: usize,
    tops: std::ops::RangeInclusive<usize>,
) -> Result<(), LayerError> {
    let describe = |r: &std::ops::RangeInclusive<usize>| {
        if r.start() == r.end() {
            r.start().to_string()
        } else if *r.end() == usize::MAX {
            format!("at least {}", r.start())
        } else {
            format!("{} to {}", r.start(), r.end())
        }
    };
    if !bottoms.contains(&bottom) {
        return Err(LayerError::config(
            name,
            format!(
                "{kind} takes {} bottom blob(s), got {bottom}",
                describe(&bottoms)
            ),
        ));
    }
    if !tops.contains(&top) {
        return Err(LayerError::config(
            name,
            format!("{kind} produces {} top blob(s), got {top}", describe(&tops)),
        ));
    }
    Ok(())
}

/// Caffe's canonical axis: a negative axis counts from the end.
pub(crate) fn canonical_axis(name: &str, axis: i32, ndim: usize) -> Result<usize, LayerError> {
    let resolved = if axis < 0 { axis + ndim as i32 } else { axis };
    if resolved < 0 || resolved as usize >= ndim.max(1) {
        return Err(LayerError::shape(
            name,
            format!("axis {axis} out of range for a {ndim}-axis blob"),
        ));
    }
    Ok(resolved as usize)
}

/// Reads a `kernel`/`stride`/`pad`-style pair the way Caffe does: explicit `_h`/`_w` fields
/// win, else the repeated field with one value for both axes or one per axis, else `default`.
pub(crate) fn spatial_pair(
    name: &str,
    what: &str,
    h: Option<u32>,
    w: Option<u32>,
    repeated: &[u32],
    default: Option<usize>,
) -> Result<[usize; 2], LayerError> {
    match (h, w, repeated) {
        (Some(h), Some(w), []) => Ok([h as usize, w as usize]),
        (None, None, []) => default.map(|d| [d, d]).ok_or_else(|| {
            LayerError::config(
                name,
                format!("{what} is required ({what}_size or {what}_h and {what}_w)"),
            )
        }),
        (None, None, [v]) => Ok([*v as usize; 2]),
        (None, None, [h, w]) => Ok([*h as usize, *w as usize]),
        _ => Err(LayerError::config(
            name,
            format!("{what}: give either one or two values or both {what}_h and {what}_w"),
        )),
    }
}

/// Caffe's loss top: a scalar (shape `[]`).
pub(crate) fn reshape_loss_top(top: &mut [Blob]) {
    top[0].reshape(&[]);
}
