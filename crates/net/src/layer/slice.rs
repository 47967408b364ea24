//! Slice (Caffe's SliceParameter: an axis or the deprecated slice_dim, slice points) and Split
//! (the fan-out the net inserts; each top has the bottom's shape).

use siamese_proto::LayerParameter;

use super::{Inferred, LayerKind, Rule};
use crate::NetError;
use crate::shape::fmt_shape;

/// Caffe's `Slice` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceConfig {
    pub axis: i32,
    /// The deprecated `slice_dim`, which wins when given (as in Caffe).
    pub slice_dim: Option<usize>,
    /// Where the pieces start along the axis (empty: equal pieces).
    pub slice_points: Vec<usize>,
}

impl SliceConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Self {
        let p = layer.slice_param.clone().unwrap_or_default();
        SliceConfig {
            axis: p.axis(),
            slice_dim: p.slice_dim.map(|d| d as usize),
            slice_points: p.slice_point.iter().map(|&s| s as usize).collect(),
        }
    }

    /// The axis of `bottom` to cut and the size of each of the `tops` pieces along it.
    pub fn sizes(
        &self,
        layer: &str,
        bottom: &[usize],
        tops: usize,
    ) -> Result<(usize, Vec<usize>), NetError> {
        self.sizes_for(&Rule::new(layer, LayerKind::Slice), bottom, tops)
    }

    fn sizes_for(&self, r: &Rule, b: &[usize], nt: usize) -> Result<(usize, Vec<usize>), NetError> {
        let axis = match self.slice_dim {
            Some(d) if d >= b.len() => {
                return Err(r.err(format!(
                    "slice_dim {d} is out of range for {}",
                    fmt_shape(b)
                )));
            }
            Some(d) => d,
            None => r.axis(self.axis, b)?,
        };
        let dim = b[axis];
        let points = &self.slice_points;
        if points.is_empty() {
            if !dim.is_multiple_of(nt) {
                return Err(r.err(format!(
                    "cannot split axis {axis} of {} ({dim}) evenly into {nt} tops",
                    fmt_shape(b)
                )));
            }
            return Ok((axis, vec![dim / nt; nt]));
        }
        if points.len() != nt - 1 {
            return Err(r.err(format!(
                "{} slice_point(s) for {nt} tops; needs {}",
                points.len(),
                nt - 1
            )));
        }
        let mut bounds = vec![0usize];
        bounds.extend(points);
        bounds.push(dim);
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(r.err(format!(
                "slice points {points:?} must increase strictly within axis {axis} of {}",
                fmt_shape(b)
            )));
        }
        Ok((axis, bounds.windows(2).map(|w| w[1] - w[0]).collect()))
    }

    pub(super) fn infer(
        &self,
        r: &Rule,
        bottom: Option<&[usize]>,
        tops: usize,
    ) -> Result<Inferred, NetError> {
        let Some(b) = bottom else {
            return Ok(Inferred::same(None, tops));
        };
        let (axis, sizes) = self.sizes_for(r, b, tops)?;
        let tops = sizes
            .into_iter()
            .map(|s| {
                let mut t = b.to_vec();
                t[axis] = s;
                Some(t)
            })
            .collect();
        Ok(Inferred {
            tops,
            params: vec![],
        })
    }
}
