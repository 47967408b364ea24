//! Slice: cuts a blob along one axis into consecutive pieces (the siamese net splits the
//! 2-channel pair into its two images); backward copies the pieces' diffs back.

use siamese_proto::LayerParameter;

use super::{Layer, canonical_axis, check_arity};
use crate::{Backend, Blob, LayerError};

/// Caffe's `Slice`.
#[derive(Debug)]
pub struct Slice {
    name: String,
    axis: i32,
    points: Vec<usize>,
    /// Per top: its size along the axis. Set by reshape.
    sizes: Vec<usize>,
    outer: usize,
    inner: usize,
    axis_len: usize,
}

impl Slice {
    pub fn new(p: &LayerParameter) -> Result<Self, LayerError> {
        let sp = p.slice_param.clone().unwrap_or_default();
        // Caffe: the deprecated slice_dim wins when given.
        let axis = if sp.slice_dim.is_some() {
            sp.slice_dim() as i32
        } else {
            sp.axis()
        };
        Ok(Self {
            name: p.name().to_string(),
            axis,
            points: sp.slice_point.iter().map(|&v| v as usize).collect(),
            sizes: Vec::new(),
            outer: 0,
            inner: 0,
            axis_len: 0,
        })
    }

    fn sizes_for(&self, axis_len: usize, num_tops: usize) -> Result<Vec<usize>, LayerError> {
        if self.points.is_empty() {
            if !axis_len.is_multiple_of(num_tops) {
                return Err(LayerError::shape(
                    &self.name,
                    format!("axis of size {axis_len} does not split evenly into {num_tops} tops"),
                ));
            }
            return Ok(vec![axis_len / num_tops; num_tops]);
        }
        if self.points.len() + 1 != num_tops {
            return Err(LayerError::config(
                &self.name,
                format!(
                    "{} slice_point(s) for {num_tops} tops (expected {})",
                    self.points.len(),
                    num_tops - 1
                ),
            ));
        }
        let mut bounds = vec![0];
        bounds.extend(&self.points);
        bounds.push(axis_len);
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "slice_point {:?} must increase strictly inside (0, {axis_len})",
                    self.points
                ),
            ));
        }
        Ok(bounds.windows(2).map(|w| w[1] - w[0]).collect())
    }
}

impl Layer for Slice {
    fn kind(&self) -> &'static str {
        "Slice"
    }

    #[cfg(feature = "cuda")]
    fn gpu_op(&self) -> Option<crate::GpuOp<'_>> {
        Some(crate::GpuOp::Slice {
            outer: self.outer,
            inner: self.inner,
            axis_len: self.axis_len,
            sizes: &self.sizes,
        })
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        check_arity(
            &self.name,
            self.kind(),
            bottom.len(),
            1..=1,
            num_tops,
            1..=usize::MAX,
        )?;
        let axis = canonical_axis(&self.name, self.axis, bottom[0].shape.len())?;
        self.sizes_for(bottom[0].shape[axis], num_tops)?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let b = &bottom[0];
        let axis = canonical_axis(&self.name, self.axis, b.shape.len())?;
        self.sizes = self.sizes_for(b.shape[axis], top.len())?;
        self.outer = b.count_range(0, axis);
        self.inner = b.count_from(axis + 1);
        self.axis_len = b.shape[axis];
        let mut shape = b.shape.clone();
        for (t, &size) in top.iter_mut().zip(&self.sizes) {
            shape[axis] = size;
            t.reshape(&shape);
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
    use siamese_proto::SliceParameter;

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
        Slice::new(&p).unwrap()
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
        let mut layer = Slice::new(&p).unwrap();
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
