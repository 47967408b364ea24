//! InnerProduct (fully connected): `top = bottom · Wᵀ + b` with weights `[num_output, inputs]`
//! (Caffe's layout; `[inputs, num_output]` when `transpose: true`), one GEMM each way.

use siamese_net::LayerKind;
use siamese_net::layer::InnerProductConfig;

use super::{Layer, check_tops};
use crate::backend::Gemm;
use crate::{Backend, Blob, LayerError};

/// Caffe's `InnerProduct`.
#[derive(Debug)]
pub struct InnerProduct {
    name: String,
    config: InnerProductConfig,
    pub(crate) num_output: usize,
    pub(crate) bias: bool,
    pub(crate) transpose: bool,
    /// Rows (`M`: product of the axes before `axis`) and inputs (`K`: the rest).
    pub(crate) rows: usize,
    pub(crate) inputs: usize,
}

impl InnerProduct {
    pub fn new(name: &str, config: &InnerProductConfig) -> Self {
        Self {
            name: name.to_string(),
            config: config.clone(),
            num_output: config.num_output,
            bias: config.bias_term,
            transpose: config.transpose,
            rows: 0,
            inputs: 0,
        }
    }
}

impl Layer for InnerProduct {
    fn kind(&self) -> LayerKind {
        LayerKind::InnerProduct
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        check_tops(&self.name, self.kind(), num_tops, 1)?;
        let split = self.config.split(&self.name, &bottom[0].shape)?;
        self.inputs = split.inputs;
        let mut shapes = vec![self.config.weight_shape(split.inputs)];
        if self.bias {
            shapes.push(vec![self.num_output]);
        }
        Ok(shapes)
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let split = self.config.split(&self.name, &bottom[0].shape)?;
        let (rows, inputs) = (split.rows, split.inputs);
        if inputs != self.inputs {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "bottom {} has {inputs} inputs per row, the weights expect {}",
                    bottom[0].shape_string(),
                    self.inputs
                ),
            ));
        }
        self.rows = rows;
        top[0].reshape(&self.config.top_shape(&bottom[0].shape, &split))?;
        Ok(())
    }

    fn forward(
        &mut self,
        backend: &dyn Backend,
        bottom: &[Blob],
        params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        let product = Gemm::new(
            false,
            !self.transpose,
            self.rows,
            self.num_output,
            self.inputs,
        );
        backend.gemm(product, &bottom[0].data, &params[0].data, &mut top[0].data);
        if self.bias {
            for row in top[0].data.chunks_exact_mut(self.num_output) {
                row.iter_mut()
                    .zip(&params[1].data)
                    .for_each(|(v, b)| *v += b);
            }
        }
        Ok(())
    }

    fn backward(
        &mut self,
        backend: &dyn Backend,
        top: &[Blob],
        params: &mut [Blob],
        propagate_down: &[bool],
        bottom: &mut [Blob],
    ) {
        let (m, n, k) = (self.rows, self.num_output, self.inputs);
        let top_diff = &top[0].diff;
        if self.transpose {
            // W [K, N] += bottomᵀ [K, M] · top_diff [M, N]
            let g = Gemm::new(true, false, k, n, m).accumulate();
            backend.gemm(g, &bottom[0].data, top_diff, &mut params[0].diff);
        } else {
            // W [N, K] += top_diffᵀ [N, M] · bottom [M, K]
            let g = Gemm::new(true, false, n, k, m).accumulate();
            backend.gemm(g, top_diff, &bottom[0].data, &mut params[0].diff);
        }
        if self.bias {
            for row in top_diff.chunks_exact(n) {
                params[1]
                    .diff
                    .iter_mut()
                    .zip(row)
                    .for_each(|(b, d)| *b += d);
            }
        }
        if propagate_down[0] {
            // bottom_diff [M, K] = top_diff [M, N] · op(W) [N, K]
            let g = Gemm::new(false, self.transpose, m, k, n);
            backend.gemm(g, top_diff, &params[0].data, &mut bottom[0].diff);
        }
    }

    fn forward_flops(&self) -> u64 {
        2 * (self.rows * self.num_output * self.inputs) as u64
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::{InnerProductParameter, LayerParameter};

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob, render};

    fn ip(num_output: u32, bias: bool, transpose: bool, axis: i32) -> InnerProduct {
        let p = LayerParameter {
            name: Some("ip".into()),
            inner_product_param: Some(InnerProductParameter {
                num_output: Some(num_output),
                bias_term: Some(bias),
                transpose: Some(transpose),
                axis: Some(axis),
                ..Default::default()
            }),
            ..Default::default()
        };
        InnerProduct::new("ip", &InnerProductConfig::parse(&p).unwrap())
    }

    #[test]
    fn snapshot() {
        // 2 rows of 3 inputs; weights [2, 3]: row 0 sums, row 1 = (1, -1, 0.5); bias (0, 10).
        let mut layer = ip(2, true, false, 1);
        let bottom = [Blob::from_data(
            &[2, 3],
            vec![1.0, 2.0, 3.0, -1.0, 0.5, 4.0],
        )];
        let params = [
            Blob::from_data(&[2, 3], vec![1.0, 1.0, 1.0, 1.0, -1.0, 0.5]),
            Blob::from_data(&[2], vec![0.0, 10.0]),
        ];
        let mut top = [Blob::default()];
        assert_eq!(layer.setup(&bottom, 1).unwrap(), vec![vec![2, 3], vec![2]]);
        layer.reshape(&bottom, &mut top).unwrap();
        layer
            .forward(&CpuBackend, &bottom, &params, &mut top)
            .unwrap();
        insta::assert_snapshot!(render(&top[0]), @r"
        shape [2, 2]
           6.0000   10.5000
           3.5000   10.5000
        ");
    }

    #[test]
    fn gradients() {
        GradientCheck::new().check(
            &mut ip(4, true, false, 1),
            vec![random_blob(&[3, 2, 2, 2], 1)],
            1,
        );
        GradientCheck::new().check(&mut ip(3, false, true, 1), vec![random_blob(&[2, 5], 2)], 2);
        GradientCheck::new().check(
            &mut ip(2, true, false, -1),
            vec![random_blob(&[2, 3, 4], 3)],
            3,
        );
    }

    #[test]
    fn input_size_change_is_an_error() {
        let mut layer = ip(2, true, false, 1);
        layer.setup(&[Blob::new(&[4, 8])], 1).unwrap();
        let err = layer
            .reshape(&[Blob::new(&[4, 9])], &mut [Blob::default()])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer \"ip\": bottom 4 9 (36) has 9 inputs per row, the weights expect 8"
        );
    }
}
