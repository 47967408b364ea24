//! ContrastiveLoss (Hadsell et al. 2006, as in Caffe): pulls similar pairs together and pushes
//! dissimilar ones beyond a margin; `legacy_version` selects Caffe's original squared form.

use siamese_net::LayerKind;
use siamese_net::layer::ContrastiveLossConfig;

use super::{Layer, reshape_loss_top};
use crate::blob::try_resize;
use crate::{Backend, Blob, LayerError};

/// Caffe's `ContrastiveLoss` over bottoms `(a, b, sim)`, `d² = ‖a − b‖²` per pair:
/// `loss = 1/(2N) Σ [sim·d² + (1 − sim)·(legacy ? max(m − d², 0) : max(m − d, 0)²)]`.
#[derive(Debug)]
pub struct ContrastiveLoss {
    name: String,
    config: ContrastiveLossConfig,
    pub(crate) margin: f32,
    pub(crate) legacy: bool,
    pub(crate) num: usize,
    pub(crate) channels: usize,
    /// `a − b`, per pair and channel.
    diff: Vec<f32>,
    dist_sq: Vec<f32>,
}

impl ContrastiveLoss {
    pub fn new(name: &str, config: &ContrastiveLossConfig) -> Self {
        Self {
            name: name.to_string(),
            config: *config,
            margin: config.margin,
            legacy: config.legacy_version,
            num: 0,
            channels: 0,
            diff: Vec::new(),
            dist_sq: Vec::new(),
        }
    }

    fn similar(label: f32) -> bool {
        // Caffe: static_cast<int>(label) != 0.
        label as i32 != 0
    }
}

impl Layer for ContrastiveLoss {
    fn kind(&self) -> LayerKind {
        LayerKind::ContrastiveLoss
    }

    fn setup(&mut self, _bottom: &[Blob], _num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        Ok(Vec::new())
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let (a, b, sim) = (&bottom[0], &bottom[1], &bottom[2]);
        self.config
            .check_shapes(&self.name, &a.shape, &b.shape, &sim.shape)?;
        let num = a.num();
        self.num = num;
        self.channels = a.count().checked_div(num).unwrap_or(0);
        try_resize(&mut self.diff, a.count(), 0.0, "loss scratch")?;
        try_resize(&mut self.dist_sq, num, 0.0, "loss scratch")?;
        reshape_loss_top(top)?;
        Ok(())
    }

    fn forward(
        &mut self,
        _backend: &dyn Backend,
        bottom: &[Blob],
        _params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        let (a, b, sim) = (&bottom[0].data, &bottom[1].data, &bottom[2].data);
        for ((d, a), b) in self.diff.iter_mut().zip(a).zip(b) {
            *d = a - b;
        }
        let mut loss = 0.0f32;
        for (i, pair) in self
            .diff
            .chunks_exact(self.channels.max(1))
            .take(self.num)
            .enumerate()
        {
            let dist_sq: f32 = pair.iter().map(|d| d * d).sum();
            self.dist_sq[i] = dist_sq;
            loss += if Self::similar(sim[i]) {
                dist_sq
            } else if self.legacy {
                (self.margin - dist_sq).max(0.0)
            } else {
                let gap = (self.margin - dist_sq.sqrt()).max(0.0);
                gap * gap
            };
        }
        top[0].data[0] = loss / self.num.max(1) as f32 / 2.0;
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
        let scale = top[0].diff[0] / self.num.max(1) as f32;
        let channels = self.channels.max(1);
        for (side, sign) in [(0, 1.0f32), (1, -1.0)] {
            if !propagate_down[side] {
                continue;
            }
            let alpha = sign * scale;
            let (labels, out) = match side {
                0 => {
                    let (first, rest) = bottom.split_at_mut(1);
                    (&rest[1].data, &mut first[0].diff)
                }
                _ => {
                    let (first, rest) = bottom.split_at_mut(2);
                    (&rest[0].data, &mut first[1].diff)
                }
            };
            for (i, (out, diff)) in out
                .chunks_exact_mut(channels)
                .zip(self.diff.chunks_exact(channels))
                .enumerate()
            {
                let factor = if Self::similar(labels[i]) {
                    alpha
                } else {
                    let (gap, beta) = if self.legacy {
                        (self.margin - self.dist_sq[i], -alpha)
                    } else {
                        let dist = self.dist_sq[i].sqrt();
                        let gap = self.margin - dist;
                        (gap, -alpha * gap / (dist + 1e-4))
                    };
                    if gap > 0.0 { beta } else { 0.0 }
                };
                out.iter_mut().zip(diff).for_each(|(o, d)| *o = factor * d);
            }
        }
    }

    fn allows_backward(&self, index: usize) -> bool {
        index < 2
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::{ContrastiveLossParameter, LayerParameter};

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob, render};

    fn layer(margin: f32, legacy: bool) -> ContrastiveLoss {
        let p = LayerParameter {
            contrastive_loss_param: Some(ContrastiveLossParameter {
                margin: Some(margin),
                legacy_version: Some(legacy),
            }),
            ..Default::default()
        };
        ContrastiveLoss::new("loss", &ContrastiveLossConfig::parse(&p).unwrap())
    }

    /// Three hand-made pairs (b is the origin each time): similar at distance 0.5
    /// (d² = 0.25), dissimilar inside the margin at distance 0.6 (d² = 0.36), dissimilar
    /// outside it at distance 1.3 (d² = 1.69).
    fn pairs() -> Vec<Blob> {
        vec![
            Blob::from_data(&[3, 2], vec![0.3, 0.4, 0.6, 0.0, 1.2, 0.5]),
            Blob::from_data(&[3, 2], vec![0.0; 6]),
            Blob::from_data(&[3], vec![1.0, 0.0, 0.0]),
        ]
    }

    /// Runs forward and backward with loss weight `weight`: (loss, diff of a, diff of b).
    fn run(layer: &mut ContrastiveLoss, weight: f32) -> (f32, Vec<f32>, Vec<f32>) {
        let mut bottom = pairs();
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer.forward(&CpuBackend, &bottom, &[], &mut top).unwrap();
        top[0].diff[0] = weight;
        layer.backward(
            &CpuBackend,
            &top,
            &mut [],
            &[true, true, false],
            &mut bottom,
        );
        (
            top[0].data[0],
            bottom[0].diff.clone(),
            bottom[1].diff.clone(),
        )
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn hand_computed_values() {
        // Non-legacy: (0.25 + (1 − 0.6)² + 0) / (2·3). Gradients (weight 1, alpha = ±1/3):
        // similar: alpha·(a − b) = (0.1, 0.4/3); inside: beta = −alpha·0.4/(0.6 + 1e-4),
        // times (0.6, 0); outside: 0.
        let inside = -0.4 / (0.6 + 1e-4) / 3.0 * 0.6;
        let (loss, da, db) = run(&mut layer(1.0, false), 1.0);
        assert!((loss - 0.41 / 6.0).abs() < 1e-7, "{loss}");
        assert_close(&da, &[0.1, 0.4 / 3.0, inside, 0.0, 0.0, 0.0]);
        assert_close(&db, &[-0.1, -0.4 / 3.0, -inside, 0.0, 0.0, 0.0]);

        // Legacy: (0.25 + max(1 − 0.36, 0) + 0) / 6; inside: beta = −alpha → −0.6/3.
        let (loss, da, db) = run(&mut layer(1.0, true), 1.0);
        assert!((loss - 0.89 / 6.0).abs() < 1e-7, "{loss}");
        assert_close(&da, &[0.1, 0.4 / 3.0, -0.2, 0.0, 0.0, 0.0]);
        assert_close(&db, &[-0.1, -0.4 / 3.0, 0.2, 0.0, 0.0, 0.0]);

        // The top diff (loss weight) scales the gradient, not the loss.
        let (loss, da, _) = run(&mut layer(1.0, true), 2.0);
        assert!((loss - 0.89 / 6.0).abs() < 1e-7);
        assert_close(&da, &[0.2, 0.8 / 3.0, -0.4, 0.0, 0.0, 0.0]);

        // A margin of 2 puts the third pair inside too: non-legacy (2 − 1.3)² = 0.49,
        // legacy max(2 − 1.69, 0) = 0.31.
        assert!(
            (run(&mut layer(2.0, false), 1.0).0 - (0.25 + 1.4 * 1.4 + 0.49) / 6.0).abs() < 1e-6
        );
        assert!((run(&mut layer(2.0, true), 1.0).0 - (0.25 + 1.64 + 0.31) / 6.0).abs() < 1e-6);
    }

    #[test]
    fn snapshot() {
        let mut out = String::new();
        for legacy in [false, true] {
            let mut l = layer(1.0, legacy);
            let (loss, da, db) = run(&mut l, 1.0);
            out += &format!("legacy_version {legacy}: loss {loss:.6}\n");
            out += &render(&Blob::from_data(&[3, 2], da));
            out += &render(&Blob::from_data(&[3, 2], db));
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn gradients() {
        // Random features in a 3-D space; labels alternate. Margins chosen so no pair sits
        // within the check's step of the hinge (checked below).
        for (legacy, margin, seed) in [
            (false, 1.0, 1),
            (true, 1.0, 2),
            (false, 2.0, 3),
            (true, 3.0, 4),
        ] {
            let a = random_blob(&[6, 3], seed);
            let b = random_blob(&[6, 3], seed + 10);
            for (x, y) in a.data.chunks(3).zip(b.data.chunks(3)) {
                let d2: f32 = x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum();
                let hinge = if legacy { d2 } else { d2.sqrt() };
                assert!(
                    (hinge - margin).abs() > 0.05,
                    "pair too close to the hinge: {hinge}"
                );
            }
            let sim = Blob::from_data(&[6], vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
            GradientCheck::new().check(&mut layer(margin, legacy), vec![a, b, sim], 0);
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let mut l = layer(1.0, false);
        let bottom = [Blob::new(&[4, 2]), Blob::new(&[4, 3]), Blob::new(&[4])];
        let err = l.reshape(&bottom, &mut [Blob::default()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("the two feature inputs must both be N x C (x 1 x 1) and alike"),
            "{err}"
        );
    }
}
