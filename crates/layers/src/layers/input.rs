//! Input: a net's entry point whose tops are filled by the caller (deploy nets); shapes come
//! from `input_param.shape` and can be changed (`Net::reshape_input`).

use siamese_proto::LayerParameter;

use super::{Layer, check_arity};
use crate::{Backend, Blob, LayerError};

/// Caffe's `Input`.
#[derive(Debug)]
pub struct Input {
    name: String,
    shapes: Vec<Vec<usize>>,
}

impl Input {
    pub fn new(p: &LayerParameter) -> Result<Self, LayerError> {
        let name = p.name().to_string();
        let mut shapes = Vec::new();
        for s in p.input_param.as_ref().map_or(&[][..], |ip| &ip.shape) {
            let dims: Result<Vec<usize>, _> = s.dim.iter().map(|&d| usize::try_from(d)).collect();
            shapes.push(dims.map_err(|_| {
                LayerError::config(&name, format!("negative dimension in shape {:?}", s.dim))
            })?);
        }
        Ok(Self { name, shapes })
    }

    fn shape(&self, index: usize) -> &[usize] {
        if self.shapes.len() == 1 {
            &self.shapes[0]
        } else {
            &self.shapes[index]
        }
    }
}

impl Layer for Input {
    fn kind(&self) -> &'static str {
        "Input"
    }

    #[cfg(feature = "cuda")]
    fn gpu_op(&self) -> Option<crate::GpuOp<'_>> {
        Some(crate::GpuOp::Host)
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        check_arity(
            &self.name,
            self.kind(),
            bottom.len(),
            0..=0,
            num_tops,
            1..=usize::MAX,
        )?;
        if self.shapes.len() != 1 && self.shapes.len() != num_tops {
            return Err(LayerError::config(
                &self.name,
                format!(
                    "input_param has {} shapes for {num_tops} tops (expected 1 or one per top)",
                    self.shapes.len()
                ),
            ));
        }
        if self.shapes.len() == 1 && num_tops > 1 {
            self.shapes = vec![self.shapes[0].clone(); num_tops];
        }
        Ok(Vec::new())
    }

    fn reshape(&mut self, _bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        for (i, t) in top.iter_mut().enumerate() {
            t.reshape(self.shape(i));
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
    use siamese_proto::{BlobShape, InputParameter};

    use super::*;

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
        let mut layer = Input::new(&p).unwrap();
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
        let err = Input::new(&two).unwrap().setup(&[], 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer \"pair\": input_param has 2 shapes for 3 tops (expected 1 or one per top)"
        );
    }
}
