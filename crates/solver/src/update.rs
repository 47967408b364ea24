//! Caffe's update rules on plain slices: gradient clipping, iter_size normalization,
//! L2/L1 regularization and the SGD, Nesterov, AdaGrad, RMSProp, AdaDelta and Adam steps.

use rayon::prelude::*;
use siamese_proto::SolverParameter;

use crate::SolverError;

/// Elements per block of a parameter's update (a few pages: each block's passes run in L1/L2).
const UPDATE_BLOCK: usize = 4096;

/// The solver `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverType {
    Sgd,
    Nesterov,
    AdaGrad,
    RmsProp,
    AdaDelta,
    Adam,
}

impl SolverType {
    /// Caffe's name, as written in `type: "..."`.
    pub fn name(self) -> &'static str {
        match self {
            SolverType::Sgd => "SGD",
            SolverType::Nesterov => "Nesterov",
            SolverType::AdaGrad => "AdaGrad",
            SolverType::RmsProp => "RMSProp",
            SolverType::AdaDelta => "AdaDelta",
            SolverType::Adam => "Adam",
        }
    }

    /// History blobs kept per parameter: two for AdaDelta and Adam, one otherwise.
    pub fn history_slots(self) -> usize {
        match self {
            SolverType::AdaDelta | SolverType::Adam => 2,
            _ => 1,
        }
    }
}

/// L2 adds `decay · w` to the gradient, L1 adds `decay · sign(w)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regularization {
    L2,
    L1,
}

/// The settings of one update rule, read from a `SolverParameter`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRule {
    pub kind: SolverType,
    pub momentum: f32,
    pub momentum2: f32,
    pub delta: f32,
    pub rms_decay: f32,
    pub weight_decay: f32,
    pub regularization: Regularization,
    /// Global L2 norm above which gradients are scaled down; negative disables.
    pub clip_gradients: f32,
    pub iter_size: i32,
}

/// One learnable parameter seen as slices: its values, its gradient and its multipliers.
pub struct ParamSlot<'a> {
    pub data: &'a mut [f32],
    pub diff: &'a mut [f32],
    pub lr_mult: f32,
    pub decay_mult: f32,
}

impl UpdateRule {
    /// Reads `type` (or the deprecated `solver_type` enum when `type` is absent), `momentum`,
    /// `momentum2`, `delta`, `rms_decay`, `weight_decay`, `regularization_type`,
    /// `clip_gradients` and `iter_size`, with Caffe's checks.
    pub fn from_param(p: &SolverParameter) -> Result<UpdateRule, SolverError> {
        let bad = |message: String| Err(SolverError::Setting { message });
        let kind = match (p.r#type.as_deref(), p.solver_type) {
            (None, Some(old)) => match old {
                1 => SolverType::Nesterov,
                2 => SolverType::AdaGrad,
                3 => SolverType::RmsProp,
                4 => SolverType::AdaDelta,
                5 => SolverType::Adam,
                _ => SolverType::Sgd,
            },
            _ => match p.r#type() {
                "SGD" => SolverType::Sgd,
                "Nesterov" => SolverType::Nesterov,
                "AdaGrad" => SolverType::AdaGrad,
                "RMSProp" => SolverType::RmsProp,
                "AdaDelta" => SolverType::AdaDelta,
                "Adam" => SolverType::Adam,
                other => {
                    return bad(format!(
                        "unknown solver type \"{other}\" (expected SGD, Nesterov, AdaGrad, RMSProp, AdaDelta or Adam)"
                    ));
                }
            },
        };
        let regularization = match p.regularization_type() {
            "L2" => Regularization::L2,
            "L1" => Regularization::L1,
            other => {
                return bad(format!(
                    "unknown regularization_type \"{other}\" (expected L2 or L1)"
                ));
            }
        };
        if p.iter_size() < 1 {
            return bad(format!("iter_size must be >= 1, got {}", p.iter_size()));
        }
        if kind == SolverType::AdaGrad && p.momentum() != 0.0 {
            return bad("AdaGrad does not use momentum; set momentum: 0".into());
        }
        if kind == SolverType::RmsProp
            && !(p.rms_decay() >= 0.0 && p.rms_decay() < 1.0 && p.momentum() == 0.0)
        {
            return bad("RMSProp needs 0 <= rms_decay < 1 and momentum 0".into());
        }
        Ok(UpdateRule {
            kind,
            momentum: p.momentum(),
            momentum2: p.momentum2(),
            delta: p.delta(),
            rms_decay: p.rms_decay(),
            weight_decay: p.weight_decay(),
            regularization,
            clip_gradients: p.clip_gradients(),
            iter_size: p.iter_size(),
        })
    }

    /// Zeroed history for parameters of these element counts, in Caffe's order: one blob per
    /// parameter, then (AdaDelta, Adam) a second blob per parameter.
    pub fn new_history(&self, counts: &[usize]) -> Vec<Vec<f32>> {
        (0..self.kind.history_slots())
            .flat_map(|_| counts.iter().map(|&n| vec![0.0; n]))
            .collect()
    }

    /// This rule at `rate` as Caffe's plain SGD step, when it is nothing more (SGD without
    /// clipping or `iter_size` normalization): a net may then run it fused where it lives.
    pub fn fused_sgd(&self, rate: f32) -> Option<siamese_layers::FusedSgd> {
        let plain =
            self.kind == SolverType::Sgd && self.clip_gradients < 0.0 && self.iter_size == 1;
        plain.then_some(siamese_layers::FusedSgd {
            rate,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            l1: self.regularization == Regularization::L1,
        })
    }

    /// Caffe's `ApplyUpdate` after the learning rate is known: clip, then per parameter
    /// normalize, regularize and compute the step into `diff`, then `data -= diff`.
    /// `iter` is the number of updates done so far (Adam's bias correction uses `iter + 1`).
    pub fn apply(
        &self,
        params: &mut [ParamSlot<'_>],
        history: &mut [Vec<f32>],
        rate: f32,
        iter: i32,
    ) {
        let n = params.len();
        assert_eq!(
            history.len(),
            n * self.kind.history_slots(),
            "history length"
        );
        self.clip(params);
        let (first, second) = history.split_at_mut(n);
        for (i, p) in params.iter_mut().enumerate() {
            let local_rate = rate * p.lr_mult;
            let local_decay = self.weight_decay * p.decay_mult;
            // Every step below is element-wise: blocks of the parameter across the rayon pool
            // give the same bits as one pass over it. Small parameters, or a one-thread pool,
            // stay on this thread (entering the pool costs a wake-up).
            let step = |data: &mut [f32], diff: &mut [f32], h: &mut [f32], h2| {
                self.normalize(diff);
                self.regularize(data, diff, local_decay);
                self.compute_update_value(diff, h, h2, local_rate, iter);
                for (w, d) in data.iter_mut().zip(diff.iter()) {
                    *w -= d;
                }
            };
            let (data, diff, h) = (&mut *p.data, &mut *p.diff, first[i].as_mut_slice());
            let h2 = second.get_mut(i).map(|v| v.as_mut_slice());
            if data.len() <= UPDATE_BLOCK || rayon::current_num_threads() == 1 {
                step(data, diff, h, h2);
                continue;
            }
            let blocks = data
                .par_chunks_mut(UPDATE_BLOCK)
                .zip(diff.par_chunks_mut(UPDATE_BLOCK))
                .zip(h.par_chunks_mut(UPDATE_BLOCK));
            match h2 {
                Some(h2) => blocks
                    .zip(h2.par_chunks_mut(UPDATE_BLOCK))
                    .for_each(|(((w, g), h), h2)| step(w, g, h, Some(h2))),
                None => blocks.for_each(|((w, g), h)| step(w, g, h, None)),
            }
        }
    }

    /// Scales every gradient by `clip / norm` when the global L2 norm exceeds `clip_gradients`.
    fn clip(&self, params: &mut [ParamSlot<'_>]) {
        if self.clip_gradients < 0.0 {
            return;
        }
        let sumsq: f32 = params
            .iter()
            .map(|p| p.diff.iter().map(|g| g * g).sum::<f32>())
            .sum();
        let norm = sumsq.sqrt();
        if norm > self.clip_gradients {
            let scale = self.clip_gradients / norm;
            for p in params.iter_mut() {
                p.diff.iter_mut().for_each(|g| *g *= scale);
            }
        }
    }

    /// Divides accumulated gradients by `iter_size`.
    fn normalize(&self, diff: &mut [f32]) {
        if self.iter_size != 1 {
            let s = 1.0 / self.iter_size as f32;
            diff.iter_mut().for_each(|g| *g *= s);
        }
    }

    fn regularize(&self, data: &[f32], diff: &mut [f32], local_decay: f32) {
        if local_decay == 0.0 {
            return;
        }
        for (g, &w) in diff.iter_mut().zip(data.iter()) {
            *g += match self.regularization {
                Regularization::L2 => local_decay * w,
                Regularization::L1 => local_decay * sign(w),
            };
        }
    }

    /// Turns the regularized gradient in `diff` into the step to subtract, updating history.
    fn compute_update_value(
        &self,
        diff: &mut [f32],
        h: &mut [f32],
        h2: Option<&mut [f32]>,
        local_rate: f32,
        iter: i32,
    ) {
        let (momentum, delta) = (self.momentum, self.delta);
        match self.kind {
            SolverType::Sgd => {
                for (g, v) in diff.iter_mut().zip(h.iter_mut()) {
                    *v = local_rate * *g + momentum * *v;
                    *g = *v;
                }
            }
            SolverType::Nesterov => {
                for (g, v) in diff.iter_mut().zip(h.iter_mut()) {
                    let previous = *v;
                    *v = local_rate * *g + momentum * *v;
                    *g = (1.0 + momentum) * *v - momentum * previous;
                }
            }
            SolverType::AdaGrad => {
                for (g, s) in diff.iter_mut().zip(h.iter_mut()) {
                    *s += *g * *g;
                    *g = local_rate * (*g / (s.sqrt() + delta));
                }
            }
            SolverType::RmsProp => {
                let decay = self.rms_decay;
                for (g, s) in diff.iter_mut().zip(h.iter_mut()) {
                    *s = (1.0 - decay) * (*g * *g) + decay * *s;
                    *g = local_rate * (*g / (s.sqrt() + delta));
                }
            }
            SolverType::AdaDelta => {
                let updates = h2.expect("AdaDelta keeps two history blobs");
                for ((g, sg), su) in diff.iter_mut().zip(h.iter_mut()).zip(updates.iter_mut()) {
                    *sg = (1.0 - momentum) * (*g * *g) + momentum * *sg;
                    let ratio = ((*su + delta) / (*sg + delta)).sqrt();
                    *g *= ratio;
                    *su = (1.0 - momentum) * (*g * *g) + momentum * *su;
                    *g *= local_rate;
                }
            }
            SolverType::Adam => {
                let v = h2.expect("Adam keeps two history blobs");
                let (beta1, beta2) = (momentum, self.momentum2);
                let t = iter + 1;
                let correction = ((1.0 - f64::from(beta2).powi(t)).sqrt()
                    / (1.0 - f64::from(beta1).powi(t))) as f32;
                for ((g, m), v) in diff.iter_mut().zip(h.iter_mut()).zip(v.iter_mut()) {
                    *m = (1.0 - beta1) * *g + beta1 * *m;
                    *v = (1.0 - beta2) * (*g * *g) + beta2 * *v;
                    *g = local_rate * correction * (*m / (v.sqrt() + delta));
                }
            }
        }
    }
}

/// Caffe's `caffe_sign`: −1, 0 or 1.
fn sign(w: f32) -> f32 {
    if w > 0.0 {
        1.0
    } else if w < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: &str) -> UpdateRule {
        UpdateRule::from_param(&SolverParameter {
            r#type: Some(kind.into()),
            momentum: Some(if matches!(kind, "AdaGrad" | "RMSProp") {
                0.0
            } else {
                0.9
            }),
            weight_decay: Some(0.0),
            ..Default::default()
        })
        .unwrap()
    }

    /// One step on a single two-element parameter from the given history; returns the new
    /// weights and the history.
    fn step(
        rule: &UpdateRule,
        w: [f32; 2],
        g: [f32; 2],
        history: Vec<Vec<f32>>,
        rate: f32,
        iter: i32,
    ) -> ([f32; 2], Vec<Vec<f32>>) {
        let (mut w, mut g, mut history) = (w, g, history);
        let mut params = [ParamSlot {
            data: &mut w,
            diff: &mut g,
            lr_mult: 1.0,
            decay_mult: 1.0,
        }];
        rule.apply(&mut params, &mut history, rate, iter);
        (w, history)
    }

    fn close(got: &[f32], want: &[f32]) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1e-3),
                "got {got:?}, expected {want:?}"
            );
        }
    }

    #[test]
    fn sgd_is_caffe_momentum_with_decay_and_multipliers() {
        let mut r = rule("SGD");
        r.weight_decay = 0.1;
        let mut w = [1.0f32, -2.0];
        let mut g = [0.5f32, 0.25];
        let mut history = vec![vec![0.2f32, -0.1]];
        let mut params = [ParamSlot {
            data: &mut w,
            diff: &mut g,
            lr_mult: 2.0,
            decay_mult: 0.5,
        }];
        r.apply(&mut params, &mut history, 0.01, 0);
        // v = 0.9·v + 0.01·2·(g + 0.1·0.5·w); w -= v
        let v0 = 0.9 * 0.2 + 0.02 * (0.5 + 0.05 * 1.0);
        let v1 = 0.9 * -0.1 + 0.02 * (0.25 + 0.05 * -2.0);
        close(&history[0], &[v0, v1]);
        close(&w, &[1.0 - v0, -2.0 - v1]);
    }

    #[test]
    fn l1_adds_decay_times_sign() {
        let mut r = rule("SGD");
        r.momentum = 0.0;
        r.weight_decay = 0.1;
        r.regularization = Regularization::L1;
        let (w, _) = step(&r, [3.0, -0.5], [0.0, 0.0], vec![vec![0.0; 2]], 1.0, 0);
        close(&w, &[2.9, -0.4]);
        let (w, _) = step(&r, [0.0, 1.0], [1.0, 0.0], vec![vec![0.0; 2]], 1.0, 0);
        close(&w, &[-1.0, 0.9]);
    }

    #[test]
    fn nesterov_steps_back_then_over() {
        let (w, h) = step(
            &rule("Nesterov"),
            [1.0, 1.0],
            [1.0, -2.0],
            vec![vec![0.5, 0.0]],
            0.1,
            0,
        );
        // v' = 0.1·g + 0.9·v; update = 1.9·v' − 0.9·v
        let v = [0.1 + 0.45, -0.2];
        close(&h[0], &v);
        close(&w, &[1.0 - (1.9 * v[0] - 0.45), 1.0 - 1.9 * v[1]]);
    }

    #[test]
    fn adagrad_divides_by_root_of_summed_squares() {
        let (w, h) = step(
            &rule("AdaGrad"),
            [0.0, 0.0],
            [2.0, -1.0],
            vec![vec![5.0, 0.0]],
            0.1,
            0,
        );
        close(&h[0], &[9.0, 1.0]);
        close(&w, &[-0.1 * 2.0 / (3.0 + 1e-8), 0.1 / (1.0 + 1e-8)]);
    }

    #[test]
    fn rmsprop_keeps_a_decaying_mean_square() {
        let (w, h) = step(
            &rule("RMSProp"),
            [0.0, 0.0],
            [2.0, 0.0],
            vec![vec![1.0, 4.0]],
            0.1,
            0,
        );
        let s0 = 0.01 * 4.0 + 0.99 * 1.0;
        close(&h[0], &[s0, 0.99 * 4.0]);
        close(&w, &[-0.1 * 2.0 / (s0.sqrt() + 1e-8), 0.0]);
    }

    #[test]
    fn adadelta_scales_by_ratio_of_update_and_gradient_rms() {
        let mut r = rule("AdaDelta");
        r.momentum = 0.95;
        r.delta = 1e-6;
        let (w, h) = step(
            &r,
            [1.0, 0.0],
            [2.0, 0.0],
            vec![vec![0.0; 2], vec![0.0; 2]],
            1.0,
            0,
        );
        let sg = 0.05 * 4.0;
        let u = 2.0 * ((1e-6f64) / (sg + 1e-6)).sqrt();
        close(&h[0], &[sg as f32, 0.0]);
        close(&h[1], &[(0.05 * u * u) as f32, 0.0]);
        close(&w, &[(1.0 - u) as f32, 0.0]);
    }

    #[test]
    fn adam_applies_caffe_bias_correction() {
        let r = rule("Adam");
        let (w, h) = step(
            &r,
            [1.0, 1.0],
            [0.5, -1.0],
            vec![vec![0.0; 2], vec![0.0; 2]],
            0.001,
            0,
        );
        // t = 1: m = 0.1·g, v = (1 − β2)·g², correction = sqrt(1 − β2)/(1 − β1); 1 − β2 is
        // taken in f32 as Caffe does (0.0010000467).
        let b2 = f64::from(1.0f32 - 0.999f32);
        let c = b2.sqrt() / (1.0 - 0.9);
        let upd = |g: f64| 0.001 * c * (0.1 * g) / ((b2 * g * g).sqrt() + 1e-8);
        close(&h[0], &[0.05, -0.1]);
        close(&h[1], &[(b2 * 0.25) as f32, b2 as f32]);
        close(&w, &[(1.0 - upd(0.5)) as f32, (1.0 - upd(-1.0)) as f32]);
        // a later iteration uses t = iter + 1
        let (w2, _) = step(
            &r,
            [1.0, 1.0],
            [0.5, -1.0],
            vec![vec![0.0; 2], vec![0.0; 2]],
            0.001,
            9,
        );
        let c10 = (1.0f64 - 0.999f64.powi(10)).sqrt() / (1.0 - 0.9f64.powi(10));
        let upd10 = 0.001 * c10 * 0.05 / ((b2 * 0.25).sqrt() + 1e-8);
        close(&w2[..1], &[(1.0 - upd10) as f32]);
    }

    #[test]
    fn clipping_scales_the_global_norm_and_iter_size_divides() {
        let mut r = rule("SGD");
        r.momentum = 0.0;
        r.clip_gradients = 1.0;
        let (mut w1, mut g1, mut w2, mut g2) = ([0.0f32], [3.0f32], [0.0f32], [4.0f32]);
        let mut history = r.new_history(&[1, 1]);
        let mut params = [
            ParamSlot {
                data: &mut w1,
                diff: &mut g1,
                lr_mult: 1.0,
                decay_mult: 1.0,
            },
            ParamSlot {
                data: &mut w2,
                diff: &mut g2,
                lr_mult: 1.0,
                decay_mult: 1.0,
            },
        ];
        r.apply(&mut params, &mut history, 1.0, 0);
        close(&[w1[0], w2[0]], &[-0.6, -0.8]);

        let mut r = rule("SGD");
        r.momentum = 0.0;
        r.iter_size = 4;
        let (w, _) = step(&r, [0.0, 0.0], [2.0, -4.0], r.new_history(&[2]), 1.0, 0);
        close(&w, &[-0.5, 1.0]);
    }

    #[test]
    fn history_has_caffe_layout() {
        let h = rule("Adam").new_history(&[3, 1]);
        assert_eq!(h.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1, 3, 1]);
        assert_eq!(rule("SGD").new_history(&[3, 1]).len(), 2);
    }

    #[test]
    fn bad_types_are_named() {
        let p = SolverParameter {
            r#type: Some("LBFGS".into()),
            ..Default::default()
        };
        let e = UpdateRule::from_param(&p).unwrap_err().to_string();
        assert!(e.contains("unknown solver type \"LBFGS\""), "{e}");
        let p = SolverParameter {
            regularization_type: Some("L3".into()),
            ..Default::default()
        };
        assert!(UpdateRule::from_param(&p).is_err());
        let p = SolverParameter {
            solver_type: Some(5),
            ..Default::default()
        };
        assert_eq!(UpdateRule::from_param(&p).unwrap().kind, SolverType::Adam);
    }
}
