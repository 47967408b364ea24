//! Input: a net's entry point whose tops are filled by the caller (deploy nets); shapes come
//! from `input_param.shape` and can be changed (`Net::reshape_input`).

use siamese_net::LayerKind;
use siamese_net::layer::InputConfig;

use super::Layer;
use crate::{Backend, Blob, LayerError};

/// Caffe's `Input`.
#[derive(Debug)]
pub struct Input {
    name: String,
    config: InputConfig,
    /// One per top (set by setup, changed by `set_input_shape`).
    shapes: Vec<Vec<usize>>,
}

impl Input {
    pub fn new(name: &str, config: &InputConfig) -> Self {
        Self {
            name: name.to_string(),
            config: config.clone(),
            shapes: Vec::new(),
        }
    }
}

impl Layer for Input {
    fn kind(&self) -> LayerKind {
        LayerKind::Input
    }

    fn setup(&mut self, _bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        self.shapes = (0..num_tops)
            .map(|i| Ok(self.config.top_shape(&self.name, i, num_tops)?.clone()))
            .collect::<Result<_, LayerError>>()?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, _bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        for (i, t) in top.iter_mut().enumerate() {
            t.reshape(&self.shapes[i])?;
        }
        Ok(())
    }

    fn forward(
        &mut self,
        _backend: &dyn Backend,
        _bottom: &[Blob],
        _params: &[Blob],
        _top: &mut [Blob],
    ) -> Result<(), LayerError> {
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

    fn set_input_shape(&mut self, index: usize, shape: &[usize]) -> bool {
        if index >= self.shapes.len() {
            return false;
        }
        self.shapes[index] = shape.to_vec();
        true
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::{BlobShape, InputParameter, LayerParameter};

    use super::*;

    fn input(p: &LayerParameter) -> Input {
        Input::new(p.name(), &InputConfig::parse(p).unwrap())
    }

    #[test]
    fn shapes_tops_and_can_be_reshaped() {
        let p = LayerParameter {
            name: Some("data".into()),
            input_param: Some(InputParameter {
                shape: vec![BlobShape {
                    dim: vec![10000, 1, 28, 28],
                }],
            }),
            ..Default::default()
        };
        let mut layer = input(&p);
        let mut top = [Blob::default()];
        layer.setup(&[], 1).unwrap();
        layer.reshape(&[], &mut top).unwrap();
        assert_eq!(top[0].shape, [10000, 1, 28, 28]);
        assert!(layer.set_input_shape(0, &[7, 1, 28, 28]));
        layer.reshape(&[], &mut top).unwrap();
        assert_eq!(top[0].count(), 7 * 784);
        let two = LayerParameter {
            name: Some("pair".into()),
            input_param: Some(InputParameter {
                shape: vec![BlobShape { dim: vec![1] }, BlobShape { dim: vec![2] }],
            }),
            ..Default::default()
        };
        let err = input(&two).setup(&[], 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer 'pair' (Input): input_param needs 1 shape or one per top (3), has 2"
        );
    }
}
