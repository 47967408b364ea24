//! Pooling: MAX (with its argmax for backward) and AVE over 2-D windows, with Caffe's output
//! size (rounded up, then clipped) and global pooling.

use siamese_net::LayerKind;
use siamese_net::layer::{PoolConfig, PoolMethod};

use super::{Layer, check_tops};
use crate::backend::PoolGeometry;
use crate::blob::try_resize;
use crate::{Backend, Blob, LayerError};

/// Caffe's `Pooling` (MAX and AVE).
#[derive(Debug)]
pub struct Pooling {
    name: String,
    pub(crate) config: PoolConfig,
    pub(crate) geometry: Option<PoolGeometry>,
    pub(crate) planes: usize,
    /// For MAX: per output, the index in its input plane of the chosen maximum.
    argmax: Vec<u32>,
}

impl Pooling {
    pub fn new(name: &str, config: &PoolConfig) -> Self {
        Self {
            name: name.to_string(),
            config: config.clone(),
            geometry: None,
            planes: 0,
            argmax: Vec::new(),
        }
    }

    /// The geometry and the top shape for `bottom` (the net's shape rule).
    fn geometry_for(&self, bottom: &Blob) -> Result<(PoolGeometry, [usize; 4]), LayerError> {
        let top = self.config.output_shape(&self.name, &bottom.shape)?;
        let (height, width) = (bottom.shape[2], bottom.shape[3]);
        let g = PoolGeometry {
            height,
            width,
            kernel: self.config.kernel_for(height, width),
            stride: self.config.stride,
            pad: self.config.pad,
        };
        Ok((g, top))
    }
}

impl Layer for Pooling {
    fn kind(&self) -> LayerKind {
        LayerKind::Pooling
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        check_tops(&self.name, self.kind(), num_tops, 1)?;
        self.geometry_for(&bottom[0])?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let (g, shape) = self.geometry_for(&bottom[0])?;
        self.planes = shape[0] * shape[1];
        self.geometry = Some(g);
        top[0].reshape(&shape)?;
        if self.config.method == PoolMethod::Max {
            try_resize(&mut self.argmax, top[0].count(), 0, "pooling argmax")?;
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
        match self.config.method {
            PoolMethod::Max => backend.max_pool_forward(
                &g,
                self.planes,
                &bottom[0].data,
                &mut top[0].data,
                &mut self.argmax,
            ),
            PoolMethod::Ave => {
                backend.ave_pool_forward(&g, self.planes, &bottom[0].data, &mut top[0].data)
            }
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
        match self.config.method {
            PoolMethod::Max => backend.max_pool_backward(
                &g,
                self.planes,
                &top[0].diff,
                &self.argmax,
                &mut bottom[0].diff,
            ),
            PoolMethod::Ave => {
                backend.ave_pool_backward(&g, self.planes, &top[0].diff, &mut bottom[0].diff)
            }
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
    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, distinct_blob, random_blob, render};

    fn pool(method: PoolMethod, kernel: usize, stride: usize, pad: usize) -> Pooling {
        let config = PoolConfig {
            method,
            kernel: [kernel; 2],
            stride: [stride; 2],
            pad: [pad; 2],
            global: false,
        };
        Pooling::new("pool", &config)
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
        let config = PoolConfig {
            method: PoolMethod::Ave,
            kernel: [0, 0],
            stride: [1, 1],
            pad: [0, 0],
            global: true,
        };
        let top = run(&mut Pooling::new("pool", &config), ramp());
        assert_eq!(top.shape, [1, 1, 1, 1]);
        assert_eq!(top.data, [17.5]);
    }
}
