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

use std::path::Path;

use siamese_net::{LayerConfig, LayerKind};
use siamese_proto::Phase;

use crate::{Backend, Blob, LayerError};

/// A layer as a net holds it: with its CUDA code in builds that have CUDA.
#[cfg(feature = "cuda")]
pub(crate) type DynLayer = dyn crate::cuda::CudaLayer;
#[cfg(not(feature = "cuda"))]
pub(crate) type DynLayer = dyn Layer;

/// Instantiates a layer of the net from its checked, typed settings. `seed` seeds its
/// randomness (Dropout); `data_source` is a Data layer's resolved source.
pub(crate) fn build(
    name: &str,
    config: &LayerConfig,
    phase: Phase,
    seed: u64,
    data_source: Option<&Path>,
) -> Result<Box<DynLayer>, LayerError> {
    Ok(match config {
        LayerConfig::Accuracy(c) => Box::new(Accuracy::new(name, c)),
        LayerConfig::ContrastiveLoss(c) => Box::new(ContrastiveLoss::new(name, c)),
        LayerConfig::Convolution(c) => Box::new(Convolution::new(name, c)?),
        LayerConfig::Data(c) => Box::new(DataLayer::new(name, c, data_source)?),
        LayerConfig::Dropout(c) => Box::new(Dropout::new(c, phase, seed)),
        LayerConfig::EuclideanLoss => Box::new(EuclideanLoss::new(name)),
        LayerConfig::InnerProduct(c) => Box::new(InnerProduct::new(name, c)),
        LayerConfig::Input(c) => Box::new(Input::new(name, c)),
        LayerConfig::Pooling(c) => Box::new(Pooling::new(name, c)),
        LayerConfig::ReLU(c) => Box::new(ReLU::new(c)),
        LayerConfig::Slice(c) => Box::new(Slice::new(name, c)),
        LayerConfig::Softmax(c) => Box::new(Softmax::new(name, c)),
        LayerConfig::SoftmaxWithLoss(c) => Box::new(SoftmaxWithLoss::new(name, c)),
        LayerConfig::Split => Box::new(Split),
    })
}

/// The buffers a layer of `config` keeps besides its tops, for bottoms and tops of these
/// shapes: what each is for and its bytes (each layer's rule sits beside its reshape).
pub(crate) fn scratch_bytes(
    name: &str,
    config: &LayerConfig,
    bottoms: &[&[usize]],
    tops: &[&[usize]],
) -> Vec<(&'static str, u64)> {
    let count = |s: &[usize]| s.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
    let bottom = bottoms.first().map_or(0, |s| count(s));
    let floats = |n: u64| n.saturating_mul(4);
    match config {
        LayerConfig::Convolution(c) => convolution::scratch_bytes(name, c, bottoms[0]),
        LayerConfig::Pooling(c) if c.method == siamese_net::layer::PoolMethod::Max => {
            vec![("argmax", floats(tops.first().map_or(0, |s| count(s))))]
        }
        LayerConfig::ContrastiveLoss(_) => {
            let num = bottoms
                .first()
                .and_then(|s| s.first())
                .copied()
                .unwrap_or(0);
            vec![("loss scratch", floats(bottom.saturating_add(num as u64)))]
        }
        LayerConfig::EuclideanLoss => vec![("loss scratch", floats(bottom))],
        LayerConfig::SoftmaxWithLoss(_) => vec![("probabilities", floats(bottom))],
        LayerConfig::Dropout(_) => vec![("mask", bottom)],
        _ => Vec::new(),
    }
}

/// Fails when the layer has more tops than this implementation fills (Caffe's optional extra
/// tops siamese does not compute).
pub(crate) fn check_tops(
    name: &str,
    kind: LayerKind,
    tops: usize,
    max: usize,
) -> Result<(), LayerError> {
    if tops > max {
        return Err(LayerError::config(
            name,
            format!("{kind} with {tops} tops is not supported (at most {max})"),
        ));
    }
    Ok(())
}

/// One Caffe layer. The `Net` calls `setup` once, then `reshape` + `forward` each iteration and
/// `backward` when gradients are needed. Conventions (Caffe's):
/// - `backward` overwrites the diff of every bottom whose `propagate_down` is true and adds the
///   parameter gradients to the parameters' diffs (shared parameters accumulate);
/// - a loss layer scales its gradient by its top's diff (the loss weight);
/// - tops never alias bottoms (the `Net` gives in-place layers a separate top blob).
pub trait Layer: Send {
    /// The layer's Caffe type.
    fn kind(&self) -> LayerKind;

    /// Checks the shapes of the bottoms (their number and the number of tops were checked
    /// with the net) and returns the shapes of the parameter blobs the layer needs, in Caffe's
    /// order (weights, then bias).
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

/// Caffe's loss top: a scalar (shape `[]`).
pub(crate) fn reshape_loss_top(top: &mut [Blob]) -> Result<(), LayerError> {
    Ok(top[0].reshape(&[])?)
}
