//! The distance losses: ContrastiveLoss (Caffe's ContrastiveLossParameter: margin,
//! legacy_version) and EuclideanLoss, with Caffe's checks of their inputs' shapes.

use siamese_proto::LayerParameter;

use super::{LayerKind, Rule};
use crate::NetError;
use crate::shape::{count, fmt_shape};

/// Caffe's `ContrastiveLoss` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContrastiveLossConfig {
    pub margin: f32,
    /// Caffe's original form: `max(margin − d², 0)` instead of `max(margin − d, 0)²`.
    pub legacy_version: bool,
}

impl ContrastiveLossConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    /// A negative margin would make every dissimilar pair's term zero (the loss
    /// `max(margin − d, 0)²` needs `margin ≥ 0` to mean a distance), so it is refused.
    pub fn parse(layer: &LayerParameter) -> Result<Self, NetError> {
        let p = layer.contrastive_loss_param.unwrap_or_default();
        let margin = p.margin();
        if !(margin >= 0.0 && margin.is_finite()) {
            return Err(
                Rule::new(layer.name(), LayerKind::ContrastiveLoss).field_err(
                    "contrastive_loss_param.margin",
                    format!("margin {margin} must be a finite number of at least 0"),
                ),
            );
        }
        Ok(ContrastiveLossConfig {
            margin,
            legacy_version: p.legacy_version(),
        })
    }

    /// Caffe's checks of the features `a`, `b` (both N × C (× 1 × 1)) and the similarity `sim`
    /// (one value per pair).
    pub fn check_shapes(
        &self,
        layer: &str,
        a: &[usize],
        b: &[usize],
        sim: &[usize],
    ) -> Result<(), NetError> {
        let r = Rule::new(layer, LayerKind::ContrastiveLoss);
        check_contrastive(&r, Some(a), Some(b), Some(sim))
    }
}

/// Caffe's legacy 4-D view: a missing trailing axis reads as 1.
fn legacy(s: &[usize], i: usize) -> usize {
    s.get(i).copied().unwrap_or(1)
}

pub(super) fn check_contrastive(
    r: &Rule,
    a: Option<&[usize]>,
    b: Option<&[usize]>,
    sim: Option<&[usize]>,
) -> Result<(), NetError> {
    if let (Some(a), Some(b)) = (a, b) {
        let flat = |s: &[usize]| s.len() <= 4 && legacy(s, 2) == 1 && legacy(s, 3) == 1;
        if legacy(a, 0) != legacy(b, 0) || legacy(a, 1) != legacy(b, 1) || !flat(a) || !flat(b) {
            return Err(r.err(format!(
                "the two feature inputs must both be N x C (x 1 x 1) and alike: {} vs {}",
                fmt_shape(a),
                fmt_shape(b)
            )));
        }
    }
    if let (Some(a), Some(sim)) = (a, sim)
        && (sim.len() > 4 || legacy(sim, 0) != legacy(a, 0) || count(sim) != Some(legacy(a, 0)))
    {
        return Err(r.err(format!(
            "the similarity input must hold one value per pair: {} for features {}",
            fmt_shape(sim),
            fmt_shape(a)
        )));
    }
    Ok(())
}

/// Caffe's EuclideanLoss check: the inputs `a` and `b` have the same number and size.
pub fn check_euclidean_shapes(layer: &str, a: &[usize], b: &[usize]) -> Result<(), NetError> {
    let r = Rule::new(layer, LayerKind::EuclideanLoss);
    check_euclidean(&r, Some(a), Some(b))
}

pub(super) fn check_euclidean(
    r: &Rule,
    a: Option<&[usize]>,
    b: Option<&[usize]>,
) -> Result<(), NetError> {
    if let (Some(a), Some(b)) = (a, b)
        && (a.first() != b.first() || count(a) != count(b))
    {
        return Err(r.err(format!(
            "inputs must have the same size: {} vs {}",
            fmt_shape(a),
            fmt_shape(b)
        )));
    }
    Ok(())
}
