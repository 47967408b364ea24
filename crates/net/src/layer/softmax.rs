//! Softmax along an axis and SoftmaxWithLoss (Caffe's LossParameter: ignore_label,
//! normalization), with Caffe's check that the labels fit the predictions.

use siamese_proto::LayerParameter;
use siamese_proto::loss_parameter::NormalizationMode;

use super::{LayerKind, Rule};
use crate::NetError;
use crate::shape::{Shape, count, fmt_shape};

/// Caffe's `Softmax` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftmaxConfig {
    pub axis: i32,
}

impl SoftmaxConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Self {
        SoftmaxConfig {
            axis: layer.softmax_param.unwrap_or_default().axis(),
        }
    }

    /// `(outer, classes, inner)` of a bottom of shape `bottom` split at the softmax axis.
    pub fn dims(&self, layer: &str, bottom: &[usize]) -> Result<[usize; 3], NetError> {
        let axis = self.axis(&Rule::new(layer, LayerKind::Softmax), bottom)?;
        Ok(split_at(bottom, axis))
    }

    pub(super) fn axis(&self, r: &Rule, bottom: &[usize]) -> Result<usize, NetError> {
        r.axis(self.axis, bottom)
    }
}

/// Caffe's `SoftmaxWithLoss` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftmaxLossConfig {
    pub axis: i32,
    pub ignore_label: Option<i32>,
    /// The normalization, with Caffe's rule that the deprecated `normalize` wins when set.
    pub normalization: NormalizationMode,
}

impl SoftmaxLossConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Self {
        let lp = layer.loss_param.unwrap_or_default();
        let normalization = match lp.normalize {
            Some(true) => NormalizationMode::Valid,
            Some(false) => NormalizationMode::BatchSize,
            None => lp.normalization(),
        };
        SoftmaxLossConfig {
            axis: layer.softmax_param.unwrap_or_default().axis(),
            ignore_label: lp.ignore_label,
            normalization,
        }
    }

    /// `(outer, classes, inner)` of the predictions, checked against the labels' shape.
    pub fn dims(
        &self,
        layer: &str,
        pred: &[usize],
        labels: &[usize],
    ) -> Result<[usize; 3], NetError> {
        let r = Rule::new(layer, LayerKind::SoftmaxWithLoss);
        label_dims(&r, self.axis, pred, Some(labels))
    }

    pub(super) fn check_labels(&self, r: &Rule, bottoms: &[Option<Shape>]) -> Result<(), NetError> {
        if let Some(pred) = &bottoms[0] {
            label_dims(r, self.axis, pred, bottoms[1].as_deref())?;
        }
        Ok(())
    }
}

/// `(outer, classes, inner)` of `shape` split at `axis`.
fn split_at(shape: &[usize], axis: usize) -> [usize; 3] {
    let product = |s: &[usize]| s.iter().product();
    [
        product(&shape[..axis]),
        shape[axis],
        product(&shape[axis + 1..]),
    ]
}

/// Caffe's check that the labels (bottom 1) have one entry per prediction of `pred` along
/// `axis`; returns `(outer, classes, inner)` of the predictions.
pub(super) fn label_dims(
    r: &Rule,
    axis: i32,
    pred: &[usize],
    label: Option<&[usize]>,
) -> Result<[usize; 3], NetError> {
    let axis = r.axis(axis, pred)?;
    let outer = count(&pred[..axis]).unwrap_or(usize::MAX);
    let inner = count(&pred[axis + 1..]).unwrap_or(usize::MAX);
    if let Some(label) = label
        && Some(outer.saturating_mul(inner)) != count(label)
    {
        return Err(r.err(format!(
            "labels {} do not match predictions {}: needs {} label(s), one per prediction along axis {axis}",
            fmt_shape(label),
            fmt_shape(pred),
            outer.saturating_mul(inner)
        )));
    }
    Ok([outer, pred[axis], inner])
}
