//! Accuracy: the fraction of samples whose label is among the top-k scores (Caffe's rule: a
//! sample is correct when fewer than k classes score strictly higher than its label).

use siamese_proto::LayerParameter;

use super::{Layer, canonical_axis, check_arity, reshape_loss_top};
use crate::{Backend, Blob, LayerError};

/// Caffe's `Accuracy` (one top). Has no gradient.
#[derive(Debug)]
pub struct Accuracy {
    name: String,
    top_k: usize,
    axis: i32,
    ignore_label: Option<i32>,
    dims: (usize, usize, usize),
}

impl Accuracy {
    pub fn new(p: &LayerParameter) -> Result<Self, LayerError> {
        let ap = p.accuracy_param.unwrap_or_default();
        Ok(Self {
            name: p.name().to_string(),
            top_k: ap.top_k() as usize,
            axis: ap.axis(),
            ignore_label: ap.ignore_label,
            dims: (0, 0, 0),
        })
    }
}

impl Layer for Accuracy {
    fn kind(&self) -> &'static str {
        "Accuracy"
    }

    #[cfg(feature = "cuda")]
    fn gpu_op(&self) -> Option<crate::GpuOp<'_>> {
        Some(crate::GpuOp::Accuracy {
            dims: self.dims,
            top_k: self.top_k,
            ignore_label: self.ignore_label,
        })
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        check_arity(
            &self.name,
            self.kind(),
            bottom.len(),
            2..=2,
            num_tops,
            1..=1,
        )?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let axis = canonical_axis(&self.name, self.axis, bottom[0].shape.len())?;
        let b = &bottom[0];
        self.dims = (
            b.count_range(0, axis),
            b.shape[axis],
            b.count_from(axis + 1),
        );
        let (outer, classes, inner) = self.dims;
        if self.top_k > classes {
            return Err(LayerError::config(
                &self.name,
                format!("top_k {} exceeds the {classes} classes", self.top_k),
            ));
        }
        if bottom[1].count() != outer * inner {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "{} labels for scores {} (expected {})",
                    bottom[1].count(),
                    b.shape_string(),
                    outer * inner
                ),
            ));
        }
        reshape_loss_top(top);
        Ok(())
    }

    fn forward(
        &mut self,
        _backend: &dyn Backend,
        bottom: &[Blob],
        _params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        let (outer, classes, inner) = self.dims;
        let (scores, labels) = (&bottom[0].data, &bottom[1].data);
        let (mut correct, mut count) = (0usize, 0usize);
        for o in 0..outer {
            for i in 0..inner {
                let label = labels[o * inner + i] as i32;
                if self.ignore_label == Some(label) {
                    continue;
                }
                if label < 0 || label as usize >= classes {
                    return Err(LayerError::shape(
                        &self.name,
                        format!("label {label} outside the {classes} classes"),
                    ));
                }
                let at = |c: usize| scores[(o * classes + c) * inner + i];
                let truth = at(label as usize);
                let better = (0..classes).filter(|&c| at(c) > truth).count();
                correct += usize::from(better < self.top_k);
                count += 1;
            }
        }
        top[0].data[0] = if count == 0 {
            0.0
        } else {
            correct as f32 / count as f32
        };
        Ok(())
    }

    fn backward(
        &mut self,
        _backend: &dyn Backend,
        _top: &[Blob],
        _params: &mut [Blob],
        _propagate_down: &[bool],
        _bottom: &mut [Blob],
    ) {
    }

    fn allows_backward(&self, _index: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::AccuracyParameter;

    use super::*;
    use crate::CpuBackend;

    fn accuracy(top_k: u32, ignore: Option<i32>, scores: Vec<f32>, labels: Vec<f32>) -> f32 {
        let p = LayerParameter {
            accuracy_param: Some(AccuracyParameter {
                top_k: Some(top_k),
                ignore_label: ignore,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut layer = Accuracy::new(&p).unwrap();
        let n = labels.len();
        let bottom = [
            Blob::from_data(&[n, scores.len() / n], scores),
            Blob::from_data(&[n], labels),
        ];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        top[0].data[0]
    }

    #[test]
    fn top_k_ties_and_ignore() {
        // Sample 0: label 2 is the best; sample 1: label 0 is second; sample 2: all tied.
        let scores = vec![0.1, 0.2, 0.7, 0.3, 0.6, 0.1, 0.5, 0.5, 0.5];
        assert_eq!(
            accuracy(1, None, scores.clone(), vec![2.0, 0.0, 1.0]),
            2.0 / 3.0
        );
        assert_eq!(accuracy(2, None, scores.clone(), vec![2.0, 0.0, 1.0]), 1.0);
        assert_eq!(
            accuracy(1, Some(0), scores.clone(), vec![2.0, 0.0, 1.0]),
            1.0
        );
        assert_eq!(accuracy(1, Some(0), scores, vec![0.0, 0.0, 0.0]), 0.0);
    }
}
