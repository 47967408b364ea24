//! Softmax along an axis, and SoftmaxWithLoss (softmax + multinomial logistic loss with
//! Caffe's normalization modes and ignore_label).

use siamese_proto::LayerParameter;
use siamese_proto::loss_parameter::NormalizationMode;

use super::{Layer, canonical_axis, check_arity, reshape_loss_top};
use crate::{Backend, Blob, LayerError};

/// `(outer, classes, inner)` of a blob split at `axis`.
fn split_at_axis(blob: &Blob, axis: usize) -> (usize, usize, usize) {
    (
        blob.count_range(0, axis),
        blob.shape[axis],
        blob.count_from(axis + 1),
    )
}

/// Numerically stable softmax of `input` into `output` (max subtracted), over `classes`
/// entries `inner` apart.
fn softmax(input: &[f32], output: &mut [f32], outer: usize, classes: usize, inner: usize) {
    for o in 0..outer {
        let base = o * classes * inner;
        for i in 0..inner {
            let at = |c: usize| base + c * inner + i;
            let max = (0..classes)
                .map(|c| input[at(c)])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for c in 0..classes {
                let e = (input[at(c)] - max).exp();
                output[at(c)] = e;
                sum += e;
            }
            for c in 0..classes {
                output[at(c)] /= sum;
            }
        }
    }
}

/// Caffe's `Softmax`.
#[derive(Debug)]
pub struct Softmax {
    name: String,
    axis: i32,
    dims: (usize, usize, usize),
}

impl Softmax {
    pub fn new(p: &LayerParameter) -> Result<Self, LayerError> {
        Ok(Self {
            name: p.name().to_string(),
            axis: p.softmax_param.unwrap_or_default().axis(),
            dims: (0, 0, 0),
        })
    }
}

impl Layer for Softmax {
    fn kind(&self) -> &'static str {
        "Softmax"
    }

    #[cfg(feature = "cuda")]
    fn gpu_op(&self) -> Option<crate::GpuOp<'_>> {
        Some(crate::GpuOp::Softmax { dims: self.dims })
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        check_arity(
            &self.name,
            self.kind(),
            bottom.len(),
            1..=1,
            num_tops,
            1..=1,
        )?;
        canonical_axis(&self.name, self.axis, bottom[0].shape.len())?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let axis = canonical_axis(&self.name, self.axis, bottom[0].shape.len())?;
        self.dims = split_at_axis(&bottom[0], axis);
        top[0].reshape(&bottom[0].shape);
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
        softmax(&bottom[0].data, &mut top[0].data, outer, classes, inner);
        Ok(())
    }

    fn backward(
        &mut self,
        _backend: &dyn Backend,
        top: &[Blob],
        _params: &mut [Blob],
        propagate_down: &[bool],
        bottom: &mut [Blob],
    ) {
        if !propagate_down[0] {
            return;
        }
        // dx = (dy − Σ_c dy·y) · y
        let (outer, classes, inner) = self.dims;
        let (y, dy, dx) = (&top[0].data, &top[0].diff, &mut bottom[0].diff);
        for o in 0..outer {
            for i in 0..inner {
                let at = |c: usize| (o * classes + c) * inner + i;
                let dot: f32 = (0..classes).map(|c| dy[at(c)] * y[at(c)]).sum();
                for c in 0..classes {
                    dx[at(c)] = (dy[at(c)] - dot) * y[at(c)];
                }
            }
        }
    }
}

/// Caffe's `SoftmaxWithLoss`: `−Σ log p[label] / normalizer`; optional second top gets the
/// probabilities.
#[derive(Debug)]
pub struct SoftmaxWithLoss {
    name: String,
    axis: i32,
    ignore_label: Option<i32>,
    normalization: NormalizationMode,
    dims: (usize, usize, usize),
    prob: Vec<f32>,
    normalizer: f32,
}

impl SoftmaxWithLoss {
    pub fn new(p: &LayerParameter) -> Result<Self, LayerError> {
        let lp = p.loss_param.unwrap_or_default();
        // Caffe: the deprecated `normalize` wins when set.
        let normalization = match lp.normalize {
            Some(true) => NormalizationMode::Valid,
            Some(false) => NormalizationMode::BatchSize,
            None => lp.normalization(),
        };
        Ok(Self {
            name: p.name().to_string(),
            axis: p.softmax_param.unwrap_or_default().axis(),
            ignore_label: lp.ignore_label,
            normalization,
            dims: (0, 0, 0),
            prob: Vec::new(),
            normalizer: 1.0,
        })
    }

    fn normalizer(&self, valid: usize) -> f32 {
        let (outer, _, inner) = self.dims;
        let n = match self.normalization {
            NormalizationMode::Full => outer * inner,
            NormalizationMode::Valid => valid,
            NormalizationMode::BatchSize => outer,
            NormalizationMode::None => 1,
        };
        (n as f32).max(1.0)
    }

    fn ignored(&self, label: i32) -> bool {
        self.ignore_label == Some(label)
    }
}

impl Layer for SoftmaxWithLoss {
    fn kind(&self) -> &'static str {
        "SoftmaxWithLoss"
    }

    #[cfg(feature = "cuda")]
    fn gpu_op(&self) -> Option<crate::GpuOp<'_>> {
        Some(crate::GpuOp::SoftmaxWithLoss {
            dims: self.dims,
            ignore_label: self.ignore_label,
            normalization: self.normalization as i32,
        })
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        check_arity(
            &self.name,
            self.kind(),
            bottom.len(),
            2..=2,
            num_tops,
            1..=2,
        )?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let axis = canonical_axis(&self.name, self.axis, bottom[0].shape.len())?;
        self.dims = split_at_axis(&bottom[0], axis);
        let (outer, _, inner) = self.dims;
        if bottom[1].count() != outer * inner {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "{} labels for scores {} (expected {})",
                    bottom[1].count(),
                    bottom[0].shape_string(),
                    outer * inner
                ),
            ));
        }
        self.prob.resize(bottom[0].count(), 0.0);
        reshape_loss_top(top);
        if let Some(prob) = top.get_mut(1) {
            prob.reshape(&bottom[0].shape);
        }
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
        softmax(&bottom[0].data, &mut self.prob, outer, classes, inner);
        let labels = &bottom[1].data;
        let (mut loss, mut valid) = (0.0f32, 0);
        for o in 0..outer {
            for i in 0..inner {
                let label = labels[o * inner + i] as i32;
                if self.ignored(label) {
                    continue;
                }
                if label < 0 || label as usize >= classes {
                    return Err(LayerError::shape(
                        &self.name,
                        format!("label {label} outside the {classes} classes"),
                    ));
                }
                let p = self.prob[(o * classes + label as usize) * inner + i];
                loss -= p.max(f32::MIN_POSITIVE).ln();
                valid += 1;
            }
        }
        self.normalizer = self.normalizer(valid);
        top[0].data[0] = loss / self.normalizer;
        if let Some(prob) = top.get_mut(1) {
            prob.data.copy_from_slice(&self.prob);
        }
        Ok(())
    }

    fn backward(
        &mut self,
        _backend: &dyn Backend,
        top: &[Blob],
        _params: &mut [Blob],
        propagate_down: &[bool],
        bottom: &mut [Blob],
    ) {
        if !propagate_down[0] {
            return;
        }
        let (outer, classes, inner) = self.dims;
        let scale = top[0].diff[0] / self.normalizer;
        let (scores, rest) = bottom.split_at_mut(1);
        let (dx, labels) = (&mut scores[0].diff, &rest[0].data);
        dx.copy_from_slice(&self.prob);
        for o in 0..outer {
            for i in 0..inner {
                let label = labels[o * inner + i] as i32;
                if self.ignored(label) {
                    (0..classes).for_each(|c| dx[(o * classes + c) * inner + i] = 0.0);
                } else {
                    dx[(o * classes + label as usize) * inner + i] -= 1.0;
                }
            }
        }
        dx.iter_mut().for_each(|v| *v *= scale);
    }

    fn allows_backward(&self, index: usize) -> bool {
        index == 0
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::LossParameter;

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob, render};

    fn with_loss(normalization: NormalizationMode, ignore: Option<i32>) -> SoftmaxWithLoss {
        let p = LayerParameter {
            loss_param: Some(LossParameter {
                normalization: Some(normalization as i32),
                ignore_label: ignore,
                ..Default::default()
            }),
            ..Default::default()
        };
        SoftmaxWithLoss::new(&p).unwrap()
    }

    fn loss(layer: &mut SoftmaxWithLoss, scores: &[f32], labels: &[f32]) -> f32 {
        let bottom = [
            Blob::from_data(
                &[labels.len(), scores.len() / labels.len()],
                scores.to_vec(),
            ),
            Blob::from_data(&[labels.len()], labels.to_vec()),
        ];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        top[0].data[0]
    }

    #[test]
    fn softmax_snapshot() {
        let bottom = [Blob::from_data(
            &[2, 3],
            vec![0.0, 1.0, 2.0, 1000.0, 1000.0, 1000.0],
        )];
        let mut layer = Softmax::new(&LayerParameter::default()).unwrap();
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        insta::assert_snapshot!(render(&top[0]), @r"
        shape [2, 3]
           0.0900    0.2447    0.6652
           0.3333    0.3333    0.3333
        ");
    }

    #[test]
    fn loss_values_and_normalization() {
        // Uniform scores over 4 classes: −ln(1/4) per sample.
        let ln4 = 4.0f32.ln();
        let scores = [0.0; 8];
        assert!(
            (loss(
                &mut with_loss(NormalizationMode::Valid, None),
                &scores,
                &[1.0, 3.0]
            ) - ln4)
                .abs()
                < 1e-6
        );
        // Ignoring label 3: VALID divides by 1 sample, BATCH_SIZE by 2, NONE by 1.
        let valid = loss(
            &mut with_loss(NormalizationMode::Valid, Some(3)),
            &scores,
            &[1.0, 3.0],
        );
        let batch = loss(
            &mut with_loss(NormalizationMode::BatchSize, Some(3)),
            &scores,
            &[1.0, 3.0],
        );
        let none = loss(
            &mut with_loss(NormalizationMode::None, Some(3)),
            &scores,
            &[1.0, 3.0],
        );
        assert!(
            (valid - ln4).abs() < 1e-6
                && (batch - ln4 / 2.0).abs() < 1e-6
                && (none - ln4).abs() < 1e-6
        );
        let mut l = with_loss(NormalizationMode::Valid, None);
        let bottom = [
            Blob::from_data(&[1, 2], vec![0.0, 0.0]),
            Blob::from_data(&[1], vec![2.0]),
        ];
        let mut top = [Blob::default()];
        l.setup(&bottom, 1).unwrap();
        l.reshape(&bottom, &mut top).unwrap();
        let err = l.forward(&CpuBackend, &bottom, &[], &mut top).unwrap_err();
        assert_eq!(err.to_string(), "layer \"\": label 2 outside the 2 classes");
    }

    #[test]
    fn gradients() {
        let labels = Blob::from_data(&[3, 2], vec![0.0, 1.0, 3.0, 2.0, 1.0, 0.0]);
        let mut l = with_loss(NormalizationMode::Valid, Some(2));
        GradientCheck::new().check(&mut l, vec![random_blob(&[3, 4, 2], 1), labels], 0);
        let labels = Blob::from_data(&[4], vec![0.0, 1.0, 4.0, 2.0]);
        let mut l = with_loss(NormalizationMode::BatchSize, None);
        GradientCheck::new().check(&mut l, vec![random_blob(&[4, 5], 2), labels], 0);
        let mut s = Softmax::new(&LayerParameter::default()).unwrap();
        GradientCheck::new().check(&mut s, vec![random_blob(&[2, 4, 3], 3)], 0);
    }
}
