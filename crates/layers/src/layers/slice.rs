//! Slice: cuts a blob along one axis into consecutive pieces (the siamese net splits the
//! 2-channel pair into its two images); backward copies the pieces' diffs back.

use siamese_net::LayerKind;
use siamese_net::layer::SliceConfig;

use super::Layer;
use crate::{Backend, Blob, LayerError};

/// Caffe's `Slice`.
#[derive(Debug)]
pub struct Slice {
    name: String,
    config: SliceConfig,
    /// Per top: its size along the axis. Set by reshape.
    pub(crate) sizes: Vec<usize>,
    pub(crate) outer: usize,
    pub(crate) inner: usize,
    pub(crate) axis_len: usize,
}

impl Slice {
    pub fn new(name: &str, config: &SliceConfig) -> Self {
        Self {
            name: name.to_string(),
            config: config.clone(),
            sizes: Vec::new(),
            outer: 0,
            inner: 0,
            axis_len: 0,
        }
    }
}

impl Layer for Slice {
    fn kind(&self) -> LayerKind {
        LayerKind::Slice
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        self.config.sizes(&self.name, &bottom[0].shape, num_tops)?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let b = &bottom[0];
        let (axis, sizes) = self.config.sizes(&self.name, &b.shape, top.len())?;
        self.sizes = sizes;
        self.outer = b.count_range(0, axis);
        self.inner = b.count_from(axis + 1);
        self.axis_len = b.shape[axis];
        let mut shape = b.shape.clone();
        for (t, &size) in top.iter_mut().zip(&self.sizes) {
            shape[axis] = size;
            t.reshape(&shape)?;
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
        let row = self.axis_len * self.inner;
        let mut offset = 0;
        for (t, &size) in top.iter_mut().zip(&self.sizes) {
            let len = size * self.inner;
            for (o, dst) in t
                .data
                .chunks_exact_mut(len.max(1))
                .take(self.outer)
                .enumerate()
            {
                dst.copy_from_slice(&bottom[0].data[o * row + offset..][..len]);
            }
            offset += len;
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
        let row = self.axis_len * self.inner;
        let mut offset = 0;
        for (t, &size) in top.iter().zip(&self.sizes) {
            let len = size * self.inner;
            for (o, src) in t.diff.chunks_exact(len.max(1)).take(self.outer).enumerate() {
                bottom[0].diff[o * row + offset..][..len].copy_from_slice(src);
            }
            offset += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::{LayerParameter, SliceParameter};

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob, render};

    fn slice(axis: i32, points: &[u32]) -> Slice {
        let p = LayerParameter {
            slice_param: Some(SliceParameter {
                axis: Some(axis),
                slice_point: points.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Slice::new("slice", &SliceConfig::parse(&p))
    }

    #[test]
    fn splits_a_pair_along_channels() {
        // Two pairs of 2x2 "images": channel 0 then channel 1.
        let bottom = [Blob::from_data(
            &[2, 2, 2, 2],
            (0..16).map(|v| v as f32).collect(),
        )];
        let mut layer = slice(1, &[1]);
        let mut top = [Blob::default(), Blob::default()];
        layer.setup(&bottom, 2).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        insta::assert_snapshot!(format!("{}{}", render(&top[0]), render(&top[1])), @r"
        shape [2, 1, 2, 2]
           0.0000    1.0000
           2.0000    3.0000
           8.0000    9.0000
          10.0000   11.0000
        shape [2, 1, 2, 2]
           4.0000    5.0000
           6.0000    7.0000
          12.0000   13.0000
          14.0000   15.0000
        ");
    }

    #[test]
    fn slice_dim_and_uneven_points() {
        let p = LayerParameter {
            slice_param: Some(SliceParameter {
                slice_dim: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut layer = Slice::new("slice", &SliceConfig::parse(&p));
        let mut top = [Blob::default(), Blob::default()];
        layer.setup(&[Blob::new(&[4, 3])], 2).unwrap();
        layer.reshape(&[Blob::new(&[4, 3])], &mut top).unwrap();
        assert_eq!(top[1].shape, [2, 3]);
        let err = slice(1, &[3]).setup(&[Blob::new(&[2, 3])], 2).unwrap_err();
        assert!(err.to_string().contains("must increase strictly"), "{err}");
    }

    #[test]
    fn gradients() {
        GradientCheck::new().tops(2).check(
            &mut slice(1, &[1]),
            vec![random_blob(&[2, 3, 2, 2], 1)],
            0,
        );
        GradientCheck::new()
            .tops(2)
            .check(&mut slice(-1, &[]), vec![random_blob(&[3, 4], 2)], 0);
    }
}
