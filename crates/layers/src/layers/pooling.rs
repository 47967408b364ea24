//! Pooling: MAX (with its argmax for backward) and AVE over 2-D windows, with Caffe's output
//! size (rounded up, then clipped) and global pooling.

use siamese_proto::LayerParameter;
use siamese_proto::pooling_parameter::PoolMethod;

use super::{Layer, check_arity, spatial_pair};
use crate::backend::PoolGeometry;
use crate::{Backend, Blob, LayerError};

/// Caffe's `Pooling` (MAX and AVE).
#[derive(Debug)]
pub struct Pooling {
    name: String,
    method: PoolMethod,
    global: bool,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    geometry: Option<PoolGeometry>,
    planes: usize,
    /// For MAX: per output, the index in its input plane of the chosen maximum.
    argmax: Vec<u32>,
}

impl Pooling {
    pub fn new(p: &LayerParameter) -> Result<Self, LayerError> {
        let name = p.name().to_string();
        let pp = p.pooling_param.unwrap_or_default();
        let method = pp.pool();
        if method == PoolMethod::Stochastic {
            return Err(LayerError::config(
                &name,
                "pool: STOCHASTIC is not supported (MAX or AVE)",
            ));
        }
        let global = pp.global_pooling();
        let kernel = if global {
            if pp.kernel_size.is_some() || pp.kernel_h.is_some() || pp.kernel_w.is_some() {
                return Err(LayerError::config(
                    &name,
                    "global_pooling takes no kernel size",
                ));
            }
            [1, 1]
        } else {
            let size: Vec<u32> = pp.kernel_size.into_iter().collect();
            spatial_pair(&name, "kernel", pp.kernel_h, pp.kernel_w, &size, None)?
        };
        let stride_size: Vec<u32> = pp.stride.into_iter().collect();
        let stride = spatial_pair(
            &name,
            "stride",
            pp.stride_h,
            pp.stride_w,
            &stride_size,
            Some(1),
        )?;
        let pad_size: Vec<u32> = pp.pad.into_iter().collect();
        let pad = spatial_pair(&name, "pad", pp.pad_h, pp.pad_w, &pad_size, Some(0))?;
        if kernel.contains(&0) || stride.contains(&0) {
            return Err(LayerError::config(
                &name,
                "kernel and stride must be positive",
            ));
        }
        if pad[0] >= kernel[0] || pad[1] >= kernel[1] {
            return Err(LayerError::config(
                &name,
                format!("pad {pad:?} must be smaller than kernel {kernel:?}"),
            ));
        }
        if global && (pad != [0, 0] || stride != [1, 1]) {
            return Err(LayerError::config(
                &name,
                "global_pooling takes stride 1 and pad 0",
            ));
        }
        Ok(Self {
            name,
            method,
            global,
            kernel,
            stride,
            pad,
            geometry: None,
            planes: 0,
            argmax: Vec::new(),
        })
    }

    fn geometry_for(&self, bottom: &Blob) -> Result<PoolGeometry, LayerError> {
        let &[_, _, height, width] = bottom.shape.as_slice() else {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "Pooling needs a 4-axis bottom (N, C, H, W), got {}",
                    bottom.shape_string()
                ),
            ));
        };
        let kernel = if self.global {
            [height, width]
        } else {
            self.kernel
        };
        let g = PoolGeometry {
            height,
            width,
            kernel,
            stride: self.stride,
            pad: self.pad,
        };
        if g.output_size().is_none() {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "kernel {kernel:?} larger than the padded input {}",
                    bottom.shape_string()
                ),
            ));
        }
        Ok(g)
    }
}

impl Layer for Pooling {
    fn kind(&self) -> &'static str {
        "Pooling"
    }

    #[cfg(feature = "cuda")]
    fn gpu_op(&self) -> Option<crate::GpuOp<'_>> {
        Some(crate::GpuOp::Pooling {
            geometry: self.geometry?,
            planes: self.planes,
            max: self.method == PoolMethod::Max,
        })
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
        self.geometry_for(&bottom[0])?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let g = self.geometry_for(&bottom[0])?;
        let [out_h, out_w] = g.output_size().unwrap_or([0, 0]);
        let (num, channels) = (bottom[0].shape[0], bottom[0].shape[1]);
        self.planes = num * channels;
        self.geometry = Some(g);
        top[0].reshape(&[num, channels, out_h, out_w]);
        if self.method == PoolMethod::Max {
            self.argmax.resize(top[0].count(), 0);
        }
        Ok(())
    }

    fn forward(
        &mut self,
        backend: &dyn Backend,
        bottom: &[Blob],
        _params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        let g = self.geometry.expect("reshape before forward");
        match self.method {
            PoolMethod::Max => backend.max_pool_forward(
                &g,
                self.planes,
                &bottom[0].data,
                &mut top[0].data,
                &mut self.argmax,
            ),
            _ => backend.ave_pool_forward(&g, self.planes, &bottom[0].data, &mut top[0].data),
        }
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
        if !propagate_down[0] {
            return;
        }
        let g = self.geometry.expect("reshape before backward");
        match self.method {
            PoolMethod::Max => backend.max_pool_backward(
                &g,
                self.planes,
                &top[0].diff,
                &self.argmax,
                &mut bottom[0].diff,
            ),
            _ => backend.ave_pool_backward(&g, self.planes, &top[0].diff, &mut bottom[0].diff),
        }
    }

    fn forward_flops(&self) -> u64 {
        self.geometry.map_or(0, |g| {
            (self.planes * g.out_spatial() * g.kernel[0] * g.kernel[1]) as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::PoolingParameter;

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, distinct_blob, random_blob, render};

    fn pool(method: PoolMethod, kernel: u32, stride: u32, pad: u32) -> Pooling {
        let p = LayerParameter {
            name: Some("pool".into()),
            pooling_param: Some(PoolingParameter {
                pool: Some(method as i32),
                kernel_size: Some(kernel),
                stride: Some(stride),
                pad: Some(pad),
                ..Default::default()
            }),
            ..Default::default()
        };
        Pooling::new(&p).unwrap()
    }

    fn run(layer: &mut Pooling, bottom: Blob) -> Blob {
        let bottom = [bottom];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        let [top] = top;
        top
    }

    fn ramp() -> Blob {
        Blob::from_data(&[1, 1, 6, 6], (0..36).map(|v| v as f32).collect())
    }

    #[test]
    fn max_on_ramp_snapshot() {
        // 3x3 windows, stride 2 on 6x6: ceil(3/2) + 1 = 3 outputs per axis, the last window
        // clipped to 2 pixels.
        let mut layer = pool(PoolMethod::Max, 3, 2, 0);
        let top = run(&mut layer, ramp());
        let mask: Vec<String> = layer.argmax.iter().map(|i| i.to_string()).collect();
        insta::assert_snapshot!(format!("{}argmax {}", render(&top), mask.join(" ")));
    }

    #[test]
    fn ave_on_ramp_with_pad_snapshot() {
        // Pad 1: windows count the padding they cover (divisor 9 inside, less at the far edge
        // where the window is clipped to size + pad).
        let mut layer = pool(PoolMethod::Ave, 3, 2, 1);
        insta::assert_snapshot!(render(&run(&mut layer, ramp())));
    }

    #[test]
    fn max_takes_the_first_of_tied_maxima() {
        let mut layer = pool(PoolMethod::Max, 2, 2, 0);
        run(
            &mut layer,
            Blob::from_data(&[1, 1, 2, 2], vec![5.0, 5.0, 5.0, 1.0]),
        );
        assert_eq!(layer.argmax, [0]);
    }

    #[test]
    fn gradients() {
        for (kernel, stride, pad) in [(2, 2, 0), (3, 2, 1), (3, 1, 0)] {
            let mut layer = pool(PoolMethod::Max, kernel, stride, pad);
            GradientCheck::new().check(&mut layer, vec![distinct_blob(&[2, 2, 5, 6], 4)], 0);
            let mut layer = pool(PoolMethod::Ave, kernel, stride, pad);
            GradientCheck::new().check(&mut layer, vec![random_blob(&[2, 2, 5, 6], 5)], 0);
        }
    }

    #[test]
    fn global_pooling_covers_the_whole_plane() {
        let p = LayerParameter {
            pooling_param: Some(PoolingParameter {
                pool: Some(PoolMethod::Ave as i32),
                global_pooling: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let top = run(&mut Pooling::new(&p).unwrap(), ramp());
        assert_eq!(top.shape, [1, 1, 1, 1]);
        assert_eq!(top.data, [17.5]);
    }
}
