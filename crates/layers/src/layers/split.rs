//! Split: the implicit fan-out Caffe inserts when one blob feeds several layers; forward
//! copies the bottom to every top, backward sums the tops' diffs.

use siamese_net::LayerKind;

use super::Layer;
use crate::{Backend, Blob, LayerError};

/// Caffe's `Split`.
#[derive(Debug)]
pub struct Split;

impl Layer for Split {
    fn kind(&self) -> LayerKind {
        LayerKind::Split
    }

    fn setup(&mut self, _bottom: &[Blob], _num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        for t in top {
            t.reshape(&bottom[0].shape)?;
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
        for t in top {
            t.data.copy_from_slice(&bottom[0].data);
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
        let diff = &mut bottom[0].diff;
        diff.copy_from_slice(&top[0].diff);
        for t in &top[1..] {
            diff.iter_mut().zip(&t.diff).for_each(|(d, t)| *d += t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob};

    #[test]
    fn diffs_are_summed() {
        let mut layer = Split;
        let bottom = [Blob::from_data(&[2], vec![1.0, 2.0])];
        let mut top = [Blob::default(), Blob::default(), Blob::default()];
        layer.setup(&bottom, 3).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        assert!(top.iter().all(|t| t.data == [1.0, 2.0]));
        top[0].diff = vec![1.0, 10.0];
        top[1].diff = vec![2.0, 20.0];
        top[2].diff = vec![4.0, 40.0];
        let mut bottom = bottom;
        layer.backward(&CpuBackend, &top, &mut [], &[true], &mut bottom);
        assert_eq!(bottom[0].diff, [7.0, 70.0]);
    }

    #[test]
    fn gradients() {
        let mut layer = Split;
        GradientCheck::new()
            .tops(2)
            .check(&mut layer, vec![random_blob(&[2, 3], 1)], 0);
    }
}
