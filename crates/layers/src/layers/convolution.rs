//! Convolution: im2col over the whole batch, then one GEMM with the weights
//! `[num_output, channels, kh, kw]`, Caffe's layout; optional bias per output channel.

use rayon::prelude::*;
use siamese_proto::LayerParameter;

use super::{Layer, check_arity, spatial_pair};
use crate::backend::{ConvGeometry, Gemm};
use crate::{Backend, Blob, LayerError};

/// Caffe's `Convolution` (groups of 1, 2-D).
#[derive(Debug)]
pub struct Convolution {
    name: String,
    num_output: usize,
    bias: bool,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    geometry: Option<ConvGeometry>,
    batch: usize,
    /// Column matrix `[channels·kh·kw, batch·out_h·out_w]`; reused for its gradient.
    col: Vec<f32>,
    /// Output (or its gradient) as `[num_output, batch·out_h·out_w]`.
    out: Vec<f32>,
}

impl Convolution {
    pub fn new(p: &LayerParameter) -> Result<Self, LayerError> {
        let name = p.name().to_string();
        let cp = p.convolution_param.clone().unwrap_or_default();
        let num_output = cp.num_output() as usize;
        if num_output == 0 {
            return Err(LayerError::config(
                &name,
                "convolution_param.num_output must be positive",
            ));
        }
        if cp.group() != 1 {
            return Err(LayerError::config(
                &name,
                format!("group: {} is not supported (only 1)", cp.group()),
            ));
        }
        if cp.axis() != 1 {
            return Err(LayerError::config(
                &name,
                format!("axis: {} is not supported (only 1)", cp.axis()),
            ));
        }
        let kernel = spatial_pair(
            &name,
            "kernel",
            cp.kernel_h,
            cp.kernel_w,
            &cp.kernel_size,
            None,
        )?;
        let stride = spatial_pair(
            &name,
            "stride",
            cp.stride_h,
            cp.stride_w,
            &cp.stride,
            Some(1),
        )?;
        let pad = spatial_pair(&name, "pad", cp.pad_h, cp.pad_w, &cp.pad, Some(0))?;
        let dilation = spatial_pair(&name, "dilation", None, None, &cp.dilation, Some(1))?;
        if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
            return Err(LayerError::config(
                &name,
                "kernel, stride and dilation must be positive",
            ));
        }
        Ok(Self {
            name,
            num_output,
            bias: cp.bias_term(),
            kernel,
            stride,
            pad,
            dilation,
            geometry: None,
            batch: 0,
            col: Vec::new(),
            out: Vec::new(),
        })
    }

    fn geometry_for(&self, bottom: &Blob) -> Result<ConvGeometry, LayerError> {
        let &[_, channels, height, width] = bottom.shape.as_slice() else {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "Convolution needs a 4-axis bottom (N, C, H, W), got {}",
                    bottom.shape_string()
                ),
            ));
        };
        let g = ConvGeometry {
            channels,
            height,
            width,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            dilation: self.dilation,
        };
        if g.output_size().is_none() {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "kernel {:?} larger than the padded input {}",
                    self.kernel,
                    bottom.shape_string()
                ),
            ));
        }
        Ok(g)
    }
}

impl Layer for Convolution {
    fn kind(&self) -> &'static str {
        "Convolution"
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
        let g = self.geometry_for(&bottom[0])?;
        let mut shapes = vec![vec![
            self.num_output,
            g.channels,
            self.kernel[0],
            self.kernel[1],
        ]];
        if self.bias {
            shapes.push(vec![self.num_output]);
        }
        Ok(shapes)
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let g = self.geometry_for(&bottom[0])?;
        if let Some(old) = self.geometry
            && old.channels != g.channels
        {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "input channels changed from {} to {}",
                    old.channels, g.channels
                ),
            ));
        }
        let [out_h, out_w] = g.output_size().unwrap_or([0, 0]);
        self.batch = bottom[0].num();
        self.geometry = Some(g);
        top[0].reshape(&[self.batch, self.num_output, out_h, out_w]);
        let columns = self.batch * out_h * out_w;
        self.col.resize(g.col_rows() * columns, 0.0);
        self.out.resize(self.num_output * columns, 0.0);
        Ok(())
    }

    fn forward(
        &mut self,
        backend: &dyn Backend,
        bottom: &[Blob],
        params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        let g = self.geometry.expect("reshape before forward");
        let spatial = g.out_spatial();
        let columns = self.batch * spatial;
        backend.im2col(&g, self.batch, &bottom[0].data, &mut self.col);
        let product = Gemm::new(false, false, self.num_output, columns, g.col_rows());
        backend.gemm(product, &params[0].data, &self.col, &mut self.out);
        // [num_output, batch, spatial] -> [batch, num_output, spatial], adding the bias.
        let bias = self.bias.then(|| params[1].data.as_slice());
        let (out, outputs) = (&self.out, self.num_output);
        top[0]
            .data
            .par_chunks_mut(outputs * spatial.max(1))
            .enumerate()
            .for_each(|(n, image)| {
                for (o, dst) in image.chunks_exact_mut(spatial.max(1)).enumerate() {
                    let src = &out[o * columns + n * spatial..][..spatial];
                    let b = bias.map_or(0.0, |b| b[o]);
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + b);
                }
            });
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
        let g = self.geometry.expect("reshape before backward");
        let spatial = g.out_spatial();
        let (batch, outputs) = (self.batch, self.num_output);
        let columns = batch * spatial;
        if columns == 0 {
            return;
        }
        // Gather the top diff as [num_output, batch·spatial] (rows in parallel).
        let top_diff = &top[0].diff;
        self.out
            .par_chunks_mut(columns)
            .enumerate()
            .for_each(|(o, row)| {
                for (n, dst) in row.chunks_exact_mut(spatial).enumerate() {
                    dst.copy_from_slice(&top_diff[(n * outputs + o) * spatial..][..spatial]);
                }
            });
        if self.bias {
            for (b, row) in params[1]
                .diff
                .iter_mut()
                .zip(self.out.chunks_exact(columns))
            {
                *b += row.iter().sum::<f32>();
            }
        }
        let weight_grad = Gemm::new(false, true, outputs, g.col_rows(), columns).accumulate();
        backend.gemm(weight_grad, &self.out, &self.col, &mut params[0].diff);
        if propagate_down[0] {
            // The column buffer is free now: reuse it for the columns' gradient.
            let col_grad = Gemm::new(true, false, g.col_rows(), columns, outputs);
            backend.gemm(col_grad, &params[0].data, &self.out, &mut self.col);
            backend.col2im(&g, batch, &self.col, &mut bottom[0].diff);
        }
    }

    fn forward_flops(&self) -> u64 {
        self.geometry.map_or(0, |g| {
            2 * (self.num_output * g.col_rows() * self.batch * g.out_spatial()) as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::ConvolutionParameter;

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob, render};

    fn conv(num_output: u32, kernel: u32, stride: u32, pad: u32, bias: bool) -> Convolution {
        let p = LayerParameter {
            name: Some("conv".into()),
            convolution_param: Some(ConvolutionParameter {
                num_output: Some(num_output),
                kernel_size: vec![kernel],
                stride: vec![stride],
                pad: vec![pad],
                bias_term: Some(bias),
                ..Default::default()
            }),
            ..Default::default()
        };
        Convolution::new(&p).unwrap()
    }

    fn ramp(shape: &[usize]) -> Blob {
        let count = shape.iter().product();
        Blob::from_data(shape, (0..count).map(|v| v as f32).collect())
    }

    #[test]
    fn ramp_snapshot() {
        // 2 filters 3x3 on a 1x1x6x6 ramp: filter 0 = all ones (window sums), filter 1 = a
        // single 1 at (0, 2) (picks the window's top-right pixel), bias (0.5, -1).
        let mut layer = conv(2, 3, 1, 0, true);
        let bottom = [ramp(&[1, 1, 6, 6])];
        let mut w = Blob::new(&[2, 1, 3, 3]);
        w.data[..9].fill(1.0);
        w.data[9 + 2] = 1.0;
        let params = [w, Blob::from_data(&[2], vec![0.5, -1.0])];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer
            .forward(&CpuBackend, &bottom, &params, &mut top)
            .unwrap();
        insta::assert_snapshot!(render(&top[0]));
    }

    #[test]
    fn stride_and_pad_snapshot() {
        let mut layer = conv(1, 3, 2, 1, false);
        let bottom = [ramp(&[1, 1, 6, 6])];
        let params = [Blob::from_data(&[1, 1, 3, 3], vec![1.0; 9])];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer
            .forward(&CpuBackend, &bottom, &params, &mut top)
            .unwrap();
        insta::assert_snapshot!(render(&top[0]));
    }

    #[test]
    fn gradients() {
        for (kernel, stride, pad, bias) in [(3, 1, 0, true), (2, 2, 1, false), (3, 2, 1, true)] {
            let mut layer = conv(3, kernel, stride, pad, bias);
            let bottom = vec![random_blob(&[2, 2, 5, 6], 1)];
            GradientCheck::new().check(&mut layer, bottom, 2);
        }
    }

    #[test]
    fn rejects_bad_configs() {
        let mut layer = conv(2, 7, 1, 0, true);
        let err = layer.setup(&[Blob::new(&[1, 1, 6, 6])], 1).unwrap_err();
        assert!(
            err.to_string().contains("larger than the padded input"),
            "{err}"
        );
        let err = layer.setup(&[Blob::new(&[1, 36])], 1).unwrap_err();
        assert!(err.to_string().contains("4-axis bottom"), "{err}");
        let p = LayerParameter {
            name: Some("c".into()),
            convolution_param: Some(ConvolutionParameter {
                num_output: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = Convolution::new(&p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer \"c\": kernel is required (kernel_size or kernel_h and kernel_w)"
        );
    }
}
