//! InnerProduct: Caffe's InnerProductParameter; the axes from `axis` on are flattened into the
//! inputs of each row, weights `[num_output, inputs]` (`[inputs, num_output]` transposed).

use siamese_proto::{FillerParameter, LayerParameter};

use super::{Inferred, LayerKind, Rule, weight_and_bias};
use crate::NetError;
use crate::shape::{Shape, count};

/// Caffe's `InnerProduct` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct InnerProductConfig {
    pub num_output: usize,
    pub bias_term: bool,
    pub axis: i32,
    pub transpose: bool,
    pub weight_filler: Option<FillerParameter>,
    pub bias_filler: Option<FillerParameter>,
}

/// How an inner product sees its bottom: rows of `inputs` values, split at `axis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSplit {
    pub axis: usize,
    pub rows: usize,
    pub inputs: usize,
}

impl InnerProductConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Result<Self, NetError> {
        let p = layer.inner_product_param.clone().unwrap_or_default();
        if p.num_output() == 0 {
            return Err(Rule::new(layer.name(), LayerKind::InnerProduct).field_err(
                "inner_product_param.num_output",
                "num_output must be positive",
            ));
        }
        Ok(InnerProductConfig {
            num_output: p.num_output() as usize,
            bias_term: p.bias_term(),
            axis: p.axis(),
            transpose: p.transpose(),
            weight_filler: p.weight_filler,
            bias_filler: p.bias_filler,
        })
    }

    pub(super) fn param_fillers(&self) -> Vec<FillerParameter> {
        weight_and_bias(&self.weight_filler, &self.bias_filler, self.bias_term)
    }

    /// Rows and inputs of a bottom of shape `bottom`.
    pub fn split(&self, layer: &str, bottom: &[usize]) -> Result<RowSplit, NetError> {
        self.split_for(&Rule::new(layer, LayerKind::InnerProduct), bottom)
    }

    fn split_for(&self, r: &Rule, b: &[usize]) -> Result<RowSplit, NetError> {
        let axis = r.axis(self.axis, b)?;
        let too_large = || r.err("input is too large");
        Ok(RowSplit {
            axis,
            rows: count(&b[..axis]).ok_or_else(too_large)?,
            inputs: count(&b[axis..]).ok_or_else(too_large)?,
        })
    }

    /// The weight shape for `inputs` inputs per row.
    pub fn weight_shape(&self, inputs: usize) -> Shape {
        if self.transpose {
            vec![inputs, self.num_output]
        } else {
            vec![self.num_output, inputs]
        }
    }

    /// The top shape: the axes before `axis`, then `num_output`.
    pub fn top_shape(&self, bottom: &[usize], split: &RowSplit) -> Shape {
        let mut top = bottom[..split.axis].to_vec();
        top.push(self.num_output);
        top
    }

    pub(super) fn infer(&self, r: &Rule, bottom: Option<&[usize]>) -> Result<Inferred, NetError> {
        let bias = self.bias_term.then(|| Some(vec![self.num_output]));
        let Some(b) = bottom else {
            let mut params = vec![None];
            params.extend(bias);
            return Ok(Inferred {
                tops: vec![None],
                params,
            });
        };
        let split = self.split_for(r, b)?;
        let mut params = vec![Some(r.checked(self.weight_shape(split.inputs))?)];
        params.extend(bias);
        Ok(Inferred {
            tops: vec![Some(r.checked(self.top_shape(b, &split))?)],
            params,
        })
    }
}
