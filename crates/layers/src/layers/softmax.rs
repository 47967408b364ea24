//! Softmax along an axis, and SoftmaxWithLoss (softmax + multinomial logistic loss with
//! Caffe's normalization modes and ignore_label).

use siamese_net::LayerKind;
use siamese_net::layer::{SoftmaxConfig, SoftmaxLossConfig};
use siamese_proto::loss_parameter::NormalizationMode;

use super::{Layer, reshape_loss_top};
use crate::blob::try_resize;
use crate::{Backend, Blob, LayerError};

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
    config: SoftmaxConfig,
    pub(crate) dims: (usize, usize, usize),
}

impl Softmax {
    pub fn new(name: &str, config: &SoftmaxConfig) -> Self {
        Self {
            name: name.to_string(),
            config: *config,
            dims: (0, 0, 0),
        }
    }
}

impl Layer for Softmax {
    fn kind(&self) -> LayerKind {
        LayerKind::Softmax
    }

    fn setup(&mut self, bottom: &[Blob], _num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        self.config.dims(&self.name, &bottom[0].shape)?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let [outer, classes, inner] = self.config.dims(&self.name, &bottom[0].shape)?;
        self.dims = (outer, classes, inner);
        top[0].reshape(&bottom[0].shape)?;
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
    config: SoftmaxLossConfig,
    pub(crate) ignore_label: Option<i32>,
    pub(crate) normalization: NormalizationMode,
    pub(crate) dims: (usize, usize, usize),
    prob: Vec<f32>,
    normalizer: f32,
}

impl SoftmaxWithLoss {
    pub fn new(name: &str, config: &SoftmaxLossConfig) -> Self {
        Self {
            name: name.to_string(),
            config: *config,
            ignore_label: config.ignore_label,
            normalization: config.normalization,
            dims: (0, 0, 0),
            prob: Vec::new(),
            normalizer: 1.0,
        }
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
    fn kind(&self) -> LayerKind {
        LayerKind::SoftmaxWithLoss
    }

    fn setup(&mut self, _bottom: &[Blob], _num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let [outer, classes, inner] =
            self.config
                .dims(&self.name, &bottom[0].shape, &bottom[1].shape)?;
        self.dims = (outer, classes, inner);
        try_resize(
            &mut self.prob,
            bottom[0].count(),
            0.0,
            "softmax probabilities",
        )?;
        reshape_loss_top(top)?;
        if let Some(prob) = top.get_mut(1) {
            prob.reshape(&bottom[0].shape)?;
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
    use siamese_proto::{LayerParameter, LossParameter};

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
        SoftmaxWithLoss::new(p.name(), &SoftmaxLossConfig::parse(&p))
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
        let mut layer = Softmax::new("prob", &SoftmaxConfig { axis: 1 });
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
        let mut s = Softmax::new("prob", &SoftmaxConfig { axis: 1 });
        GradientCheck::new().check(&mut s, vec![random_blob(&[2, 4, 3], 3)], 0);
    }
}
