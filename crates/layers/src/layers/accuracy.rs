//! Accuracy: the fraction of samples whose label is among the top-k scores (Caffe's rule: a
//! sample is correct when fewer than k classes score strictly higher than its label).

use siamese_net::LayerKind;
use siamese_net::layer::AccuracyConfig;

use super::{Layer, check_tops, reshape_loss_top};
use crate::{Backend, Blob, LayerError};

/// Caffe's `Accuracy` (one top). Has no gradient.
#[derive(Debug)]
pub struct Accuracy {
    name: String,
    config: AccuracyConfig,
    pub(crate) top_k: usize,
    pub(crate) ignore_label: Option<i32>,
    pub(crate) dims: (usize, usize, usize),
}

impl Accuracy {
    pub fn new(name: &str, config: &AccuracyConfig) -> Self {
        Self {
            name: name.to_string(),
            config: *config,
            top_k: config.top_k,
            ignore_label: config.ignore_label,
            dims: (0, 0, 0),
        }
    }
}

impl Layer for Accuracy {
    fn kind(&self) -> LayerKind {
        LayerKind::Accuracy
    }

    fn setup(&mut self, _bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        // The per-class accuracy top is not computed.
        check_tops(&self.name, self.kind(), num_tops, 1)?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let [outer, classes, inner] =
            self.config
                .dims(&self.name, &bottom[0].shape, &bottom[1].shape)?;
        self.dims = (outer, classes, inner);
        reshape_loss_top(top)?;
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
    use siamese_proto::{AccuracyParameter, LayerParameter};

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
        let mut layer = Accuracy::new("accuracy", &AccuracyConfig::parse(&p));
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
