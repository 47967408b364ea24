//! Dropout: at TRAIN zeroes each input with probability `dropout_ratio` (seeded mask) and
//! scales the survivors by 1 / (1 − ratio); at TEST the identity, as Caffe.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_net::LayerKind;
use siamese_net::layer::DropoutConfig;
use siamese_proto::Phase;

use super::Layer;
use crate::blob::try_resize;
use crate::{Backend, Blob, LayerError};

/// Caffe's `Dropout`.
#[derive(Debug)]
pub struct Dropout {
    ratio: f32,
    train: bool,
    rng: ChaCha8Rng,
    mask: Vec<bool>,
}

impl Dropout {
    pub fn new(config: &DropoutConfig, phase: Phase, seed: u64) -> Self {
        Self {
            ratio: config.ratio,
            train: phase == Phase::Train,
            rng: ChaCha8Rng::seed_from_u64(seed),
            mask: Vec::new(),
        }
    }

    fn scale(&self) -> f32 {
        1.0 / (1.0 - self.ratio)
    }
}

impl Layer for Dropout {
    fn kind(&self) -> LayerKind {
        LayerKind::Dropout
    }

    fn setup(&mut self, _bottom: &[Blob], _num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        top[0].reshape(&bottom[0].shape)?;
        try_resize(&mut self.mask, bottom[0].count(), true, "dropout mask")?;
        Ok(())
    }

    fn forward(
        &mut self,
        _backend: &dyn Backend,
        bottom: &[Blob],
        _params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        if !self.train {
            top[0].data.copy_from_slice(&bottom[0].data);
            return Ok(());
        }
        let (keep, scale) = (1.0 - self.ratio as f64, self.scale());
        for ((y, &x), m) in top[0]
            .data
            .iter_mut()
            .zip(&bottom[0].data)
            .zip(&mut self.mask)
        {
            *m = self.rng.random_bool(keep);
            *y = if *m { x * scale } else { 0.0 };
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
        if !self.train {
            bottom[0].diff.copy_from_slice(&top[0].diff);
            return;
        }
        let scale = self.scale();
        for ((dx, &dy), &m) in bottom[0].diff.iter_mut().zip(&top[0].diff).zip(&self.mask) {
            *dx = if m { dy * scale } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::{DropoutParameter, LayerParameter};

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob};

    fn dropout(phase: Phase, seed: u64) -> Dropout {
        let p = LayerParameter {
            dropout_param: Some(DropoutParameter {
                dropout_ratio: Some(0.25),
            }),
            ..Default::default()
        };
        Dropout::new(&DropoutConfig::parse(&p).unwrap(), phase, seed)
    }

    fn forward(layer: &mut Dropout, bottom: &Blob) -> Vec<f32> {
        let bottom = [bottom.clone()];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        top[0].data.clone()
    }

    #[test]
    fn train_masks_and_scales_test_is_identity() {
        let ones = Blob::from_data(&[1000], vec![1.0; 1000]);
        let out = forward(&mut dropout(Phase::Train, 5), &ones);
        let kept = out.iter().filter(|&&v| v != 0.0).count();
        assert!((700..800).contains(&kept), "{kept}");
        assert!(
            out.iter()
                .all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6)
        );
        assert_eq!(
            out,
            forward(&mut dropout(Phase::Train, 5), &ones),
            "same seed, same mask"
        );
        assert_eq!(forward(&mut dropout(Phase::Test, 5), &ones), ones.data);
    }

    /// The mask is drawn anew each forward; the check perturbs one input at a time, so it runs
    /// at TEST (identity) and the TRAIN gradient is checked against the mask directly.
    #[test]
    fn gradients() {
        GradientCheck::new().check(
            &mut dropout(Phase::Test, 0),
            vec![random_blob(&[3, 4], 1)],
            0,
        );
        let mut layer = dropout(Phase::Train, 1);
        let x = random_blob(&[50], 2);
        let y = forward(&mut layer, &x);
        let mut top = [Blob::from_data(&[50], y.clone())];
        top[0].diff = vec![1.0; 50];
        let mut bottom = [x.clone()];
        layer.backward(&CpuBackend, &top, &mut [], &[true], &mut bottom);
        for ((dx, y), x) in bottom[0].diff.iter().zip(&y).zip(&x.data) {
            // y = x·dx for this linear map.
            assert!((x * dx - y).abs() < 1e-6);
        }
    }
}
