//! ReLU with Caffe's `negative_slope` (leaky). In a prototxt it usually runs in place; the
//! `Net` gives it its own top blob, so backward can read the input.

use siamese_net::LayerKind;
use siamese_net::layer::ReluConfig;

use super::Layer;
use crate::{Backend, Blob, LayerError};

/// Caffe's `ReLU`: `max(x, 0) + negative_slope · min(x, 0)`.
#[derive(Debug)]
pub struct ReLU {
    pub(crate) slope: f32,
}

impl ReLU {
    pub fn new(config: &ReluConfig) -> Self {
        Self {
            slope: config.negative_slope,
        }
    }
}

impl Layer for ReLU {
    fn kind(&self) -> LayerKind {
        LayerKind::ReLU
    }

    fn setup(&mut self, _bottom: &[Blob], _num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        top[0].reshape(&bottom[0].shape)?;
        Ok(())
    }

    fn forward(
        &mut self,
        backend: &dyn Backend,
        bottom: &[Blob],
        _params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        backend.relu_forward(self.slope, &bottom[0].data, &mut top[0].data);
        Ok(())
    }

    fn backward(
        &mut self,
        backend: &dyn Backend,
        top: &[Blob],
        _params: &mut [Blob],
        propagate_down: &[bool],
        bottom: &mut [Blob],
    ) {
        if propagate_down[0] {
            let bottom = &mut bottom[0];
            backend.relu_backward(self.slope, &bottom.data, &top[0].diff, &mut bottom.diff);
        }
    }

    fn forward_flops(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::{LayerParameter, ReLuParameter};

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, distinct_blob, render};

    fn relu(slope: f32) -> ReLU {
        let p = LayerParameter {
            relu_param: Some(ReLuParameter {
                negative_slope: Some(slope),
                ..Default::default()
            }),
            ..Default::default()
        };
        ReLU::new(&ReluConfig::parse(&p).unwrap())
    }

    #[test]
    fn snapshot() {
        let bottom = [Blob::from_data(
            &[2, 3],
            vec![-2.0, -0.5, 0.0, 0.5, 1.0, 3.0],
        )];
        let mut out = String::new();
        for slope in [0.0, 0.1] {
            let mut layer = relu(slope);
            let mut top = [Blob::default()];
            layer.setup(&bottom, 1).unwrap();
            layer.reshape(&bottom, &mut top).unwrap();
            layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
            out += &format!("negative_slope {slope}\n{}", render(&top[0]));
        }
        insta::assert_snapshot!(out, @r"
        negative_slope 0
        shape [2, 3]
           0.0000    0.0000    0.0000
           0.5000    1.0000    3.0000
        negative_slope 0.1
        shape [2, 3]
          -0.2000   -0.0500    0.0000
           0.5000    1.0000    3.0000
        ");
    }

    #[test]
    fn gradients() {
        // Inputs at least 0.025 from zero: the check's ±0.01 steps never cross the kink.
        GradientCheck::new().check(&mut relu(0.0), vec![distinct_blob(&[2, 3, 4], 1)], 0);
        GradientCheck::new().check(&mut relu(0.2), vec![distinct_blob(&[2, 3, 4], 2)], 0);
    }
}
