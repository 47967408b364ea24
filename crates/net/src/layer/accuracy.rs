//! Accuracy: Caffe's AccuracyParameter (top_k, axis, ignore_label); a scalar top and an
//! optional per-class top, with the label check of the softmax losses.

use siamese_proto::LayerParameter;

use super::softmax::label_dims;
use super::{LayerKind, Rule};
use crate::NetError;
use crate::shape::{Shape, fmt_shape};

/// Caffe's `Accuracy` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracyConfig {
    pub top_k: usize,
    pub axis: i32,
    pub ignore_label: Option<i32>,
}

impl AccuracyConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Self {
        let p = layer.accuracy_param.unwrap_or_default();
        AccuracyConfig {
            top_k: p.top_k() as usize,
            axis: p.axis(),
            ignore_label: p.ignore_label,
        }
    }

    /// `(outer, classes, inner)` of the scores, checked against the labels and `top_k`.
    pub fn dims(
        &self,
        layer: &str,
        scores: &[usize],
        labels: &[usize],
    ) -> Result<[usize; 3], NetError> {
        self.dims_for(&Rule::new(layer, LayerKind::Accuracy), scores, Some(labels))
    }

    fn dims_for(
        &self,
        r: &Rule,
        scores: &[usize],
        labels: Option<&[usize]>,
    ) -> Result<[usize; 3], NetError> {
        let dims = label_dims(r, self.axis, scores, labels)?;
        if self.top_k > dims[1] {
            return Err(r.err(format!(
                "top_k {} is more than the {} classes of {}",
                self.top_k,
                dims[1],
                fmt_shape(scores)
            )));
        }
        Ok(dims)
    }

    /// The number of classes, when the scores' shape is known.
    pub(super) fn classes(
        &self,
        r: &Rule,
        bottoms: &[Option<Shape>],
    ) -> Result<Option<usize>, NetError> {
        let Some(scores) = &bottoms[0] else {
            return Ok(None);
        };
        Ok(Some(self.dims_for(r, scores, bottoms[1].as_deref())?[1]))
    }
}
