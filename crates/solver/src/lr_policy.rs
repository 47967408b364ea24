//! Learning-rate policies, as Caffe's `SGDSolver::GetLearningRate` computes them.
//! fixed, step, exp, inv, multistep (advancing `current_step`), poly and sigmoid.

use siamese_proto::SolverParameter;

use crate::SolverError;

/// How the learning rate changes with the iteration (`lr_policy` and its settings).
#[derive(Debug, Clone, PartialEq)]
pub enum LrPolicy {
    /// `base_lr`.
    Fixed,
    /// `base_lr · gamma ^ floor(iter / stepsize)`.
    Step { gamma: f32, stepsize: i32 },
    /// `base_lr · gamma ^ iter`.
    Exp { gamma: f32 },
    /// `base_lr · (1 + gamma · iter) ^ (−power)`.
    Inv { gamma: f32, power: f32 },
    /// `base_lr · gamma ^ current_step`, where `current_step` advances by one each time `iter`
    /// reaches the next `stepvalue`.
    MultiStep { gamma: f32, stepvalues: Vec<i32> },
    /// `base_lr · (1 − iter / max_iter) ^ power`.
    Poly { power: f32, max_iter: i32 },
    /// `base_lr · 1 / (1 + exp(−gamma · (iter − stepsize)))`.
    Sigmoid { gamma: f32, stepsize: i32 },
}

/// The base learning rate with its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningRate {
    pub base_lr: f32,
    pub policy: LrPolicy,
}

impl LearningRate {
    /// Reads `base_lr`, `lr_policy`, `gamma`, `power`, `stepsize`, `stepvalue` and `max_iter`,
    /// checking what Caffe checks (`gamma >= 0`, `stepsize > 0`).
    pub fn from_param(p: &SolverParameter) -> Result<LearningRate, SolverError> {
        let bad = |message: String| Err(SolverError::Setting { message });
        let gamma = p.gamma();
        let needs_gamma = |name: &str| -> Result<f32, SolverError> {
            if p.gamma.is_none() || gamma < 0.0 {
                return Err(SolverError::Setting {
                    message: format!("lr_policy \"{name}\" needs gamma >= 0, got {:?}", p.gamma),
                });
            }
            Ok(gamma)
        };
        let needs_stepsize = |name: &str| -> Result<i32, SolverError> {
            if p.stepsize() <= 0 {
                return Err(SolverError::Setting {
                    message: format!(
                        "lr_policy \"{name}\" needs stepsize > 0, got {:?}",
                        p.stepsize
                    ),
                });
            }
            Ok(p.stepsize())
        };
        let name = p.lr_policy();
        let policy = match name {
            "fixed" => LrPolicy::Fixed,
            "step" => LrPolicy::Step {
                gamma: needs_gamma(name)?,
                stepsize: needs_stepsize(name)?,
            },
            "exp" => LrPolicy::Exp {
                gamma: needs_gamma(name)?,
            },
            "inv" => LrPolicy::Inv {
                gamma: needs_gamma(name)?,
                power: p.power(),
            },
            "multistep" => LrPolicy::MultiStep {
                gamma: needs_gamma(name)?,
                stepvalues: p.stepvalue.clone(),
            },
            "poly" => {
                if p.max_iter() <= 0 {
                    return bad(format!(
                        "lr_policy \"poly\" needs max_iter > 0, got {}",
                        p.max_iter()
                    ));
                }
                LrPolicy::Poly {
                    power: p.power(),
                    max_iter: p.max_iter(),
                }
            }
            "sigmoid" => LrPolicy::Sigmoid {
                gamma: needs_gamma(name)?,
                stepsize: needs_stepsize(name)?,
            },
            "" => return bad(
                "lr_policy is missing (expected fixed, step, exp, inv, multistep, poly or sigmoid)"
                    .into(),
            ),
            other => {
                return bad(format!(
                    "unknown lr_policy \"{other}\" (expected fixed, step, exp, inv, multistep, poly or sigmoid)"
                ));
            }
        };
        Ok(LearningRate {
            base_lr: p.base_lr(),
            policy,
        })
    }

    /// The rate at `iter`. Like Caffe, `step` sets `current_step` to `iter / stepsize` and
    /// `multistep` advances it by at most one per call, so call this once per iteration.
    /// Caffe computes `pow(float, int)` in double and the rest in float; so does this.
    pub fn rate(&self, iter: i32, current_step: &mut i32) -> f32 {
        let base = self.base_lr;
        match &self.policy {
            LrPolicy::Fixed => base,
            LrPolicy::Step { gamma, stepsize } => {
                *current_step = iter / stepsize;
                (f64::from(base) * f64::from(*gamma).powi(*current_step)) as f32
            }
            LrPolicy::Exp { gamma } => (f64::from(base) * f64::from(*gamma).powi(iter)) as f32,
            LrPolicy::Inv { gamma, power } => base * (1.0 + gamma * iter as f32).powf(-power),
            LrPolicy::MultiStep { gamma, stepvalues } => {
                if let Some(&next) = stepvalues.get(*current_step as usize)
                    && iter >= next
                {
                    *current_step += 1;
                }
                (f64::from(base) * f64::from(*gamma).powi(*current_step)) as f32
            }
            LrPolicy::Poly { power, max_iter } => {
                base * (1.0 - iter as f32 / *max_iter as f32).powf(*power)
            }
            LrPolicy::Sigmoid { gamma, stepsize } => {
                base * (1.0 / (1.0 + (-gamma * (iter as f32 - *stepsize as f32)).exp()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(policy: &str) -> SolverParameter {
        SolverParameter {
            base_lr: Some(0.01),
            lr_policy: Some(policy.into()),
            gamma: Some(0.1),
            power: Some(0.75),
            stepsize: Some(100),
            stepvalue: vec![10, 20, 40],
            max_iter: Some(1000),
            ..Default::default()
        }
    }

    /// Runs the policy from iteration 0 to the last requested one (so multistep can advance)
    /// and compares the rates at the requested iterations with hand-computed values.
    fn check(policy: &str, edit: impl Fn(&mut SolverParameter), expect: &[(i32, f64)]) {
        let mut p = param(policy);
        edit(&mut p);
        let lr = LearningRate::from_param(&p).unwrap();
        let last = expect.iter().map(|e| e.0).max().unwrap();
        let mut step = 0;
        let mut got = std::collections::BTreeMap::new();
        for iter in 0..=last {
            got.insert(iter, lr.rate(iter, &mut step));
        }
        for &(iter, want) in expect {
            let g = f64::from(got[&iter]);
            assert!(
                (g - want).abs() <= 1e-6 * want.abs().max(1e-12),
                "{policy} at {iter}: got {g}, expected {want}"
            );
        }
    }

    #[test]
    fn fixed_is_base_lr() {
        check("fixed", |_| {}, &[(0, 0.01), (999, 0.01)]);
    }

    #[test]
    fn step_drops_by_gamma_every_stepsize() {
        check(
            "step",
            |_| {},
            &[(0, 0.01), (99, 0.01), (100, 0.001), (250, 0.0001)],
        );
    }

    #[test]
    fn exp_is_gamma_to_the_iter() {
        check(
            "exp",
            |p| p.gamma = Some(0.5),
            &[(0, 0.01), (1, 0.005), (3, 0.00125)],
        );
    }

    /// Caffe's mnist/siamese setting: base_lr 0.01, gamma 0.0001, power 0.75.
    #[test]
    fn inv_matches_caffe_mnist_values() {
        check(
            "inv",
            |p| p.gamma = Some(0.0001),
            &[
                (0, 0.01),
                (100, 0.01 * 1.01f64.powf(-0.75)),
                (10000, 0.01 * 2f64.powf(-0.75)),
            ],
        );
        let p = SolverParameter {
            gamma: Some(0.0001),
            ..param("inv")
        };
        let rate = LearningRate::from_param(&p).unwrap().rate(100, &mut 0);
        // Caffe prints this rate as 0.00992565 (six significant digits).
        assert_eq!(format!("{rate:.5e}"), "9.92565e-3");
    }

    #[test]
    fn multistep_advances_current_step_at_each_stepvalue() {
        check(
            "multistep",
            |_| {},
            &[
                (9, 0.01),
                (10, 0.001),
                (19, 0.001),
                (20, 0.0001),
                (45, 0.00001),
            ],
        );
    }

    #[test]
    fn multistep_resumes_from_current_step() {
        let lr = LearningRate::from_param(&param("multistep")).unwrap();
        let mut step = 2;
        assert!((lr.rate(30, &mut step) - 0.0001).abs() < 1e-10);
        assert_eq!(step, 2);
        lr.rate(40, &mut step);
        assert_eq!(step, 3);
    }

    #[test]
    fn poly_reaches_zero_at_max_iter() {
        check(
            "poly",
            |p| p.power = Some(2.0),
            &[(0, 0.01), (500, 0.0025), (1000, 0.0)],
        );
    }

    #[test]
    fn sigmoid_is_half_at_stepsize() {
        check(
            "sigmoid",
            |_| {},
            &[(100, 0.005), (110, 0.01 / (1.0 + (-1.0f64).exp()))],
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let mut p = param("step");
        p.stepsize = None;
        let e = LearningRate::from_param(&p).unwrap_err().to_string();
        assert!(e.contains("stepsize > 0"), "{e}");
        let e = LearningRate::from_param(&param("cosine"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown lr_policy \"cosine\""), "{e}");
        let mut p = param("exp");
        p.gamma = None;
        assert!(LearningRate::from_param(&p).is_err());
    }
}
