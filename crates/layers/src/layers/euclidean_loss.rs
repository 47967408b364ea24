//! EuclideanLoss: `1/(2N) Σ ‖a − b‖²`, gradients to both sides (scaled by the loss weight).

use siamese_net::LayerKind;
use siamese_net::layer::check_euclidean_shapes;

use super::{Layer, reshape_loss_top};
use crate::blob::try_resize;
use crate::{Backend, Blob, LayerError};

/// Caffe's `EuclideanLoss`.
#[derive(Debug)]
pub struct EuclideanLoss {
    name: String,
    diff: Vec<f32>,
    num: usize,
}

impl EuclideanLoss {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            diff: Vec::new(),
            num: 0,
        }
    }
}

impl Layer for EuclideanLoss {
    fn kind(&self) -> LayerKind {
        LayerKind::EuclideanLoss
    }

    fn setup(&mut self, _bottom: &[Blob], _num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        check_euclidean_shapes(&self.name, &bottom[0].shape, &bottom[1].shape)?;
        self.num = bottom[0].num();
        try_resize(&mut self.diff, bottom[0].count(), 0.0, "loss scratch")?;
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
        for ((d, a), b) in self
            .diff
            .iter_mut()
            .zip(&bottom[0].data)
            .zip(&bottom[1].data)
        {
            *d = a - b;
        }
        let sum: f32 = self.diff.iter().map(|d| d * d).sum();
        top[0].data[0] = sum / self.num.max(1) as f32 / 2.0;
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
        let scale = top[0].diff[0] / self.num.max(1) as f32;
        for (side, sign) in [(0, 1.0f32), (1, -1.0)] {
            if propagate_down[side] {
                let alpha = sign * scale;
                for (out, d) in bottom[side].diff.iter_mut().zip(&self.diff) {
                    *out = alpha * d;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob};

    #[test]
    fn value_and_gradients() {
        let mut layer = EuclideanLoss::new("loss");
        let bottom = [
            Blob::from_data(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            Blob::from_data(&[2, 2], vec![0.0, 0.0, 3.0, 2.0]),
        ];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        assert_eq!(top[0].data[0], (1.0 + 4.0 + 0.0 + 4.0) / 4.0);
        GradientCheck::new().check(
            &mut layer,
            vec![random_blob(&[3, 4], 1), random_blob(&[3, 4], 2)],
            0,
        );
    }
}
