//! The solver settings' ranges: each number Caffe gives a meaning to only in some range
//! (iterations and intervals ≥ 0, momentum in [0, 1), ...) checked once, naming the field.

use siamese_proto::SolverParameter;

use crate::SolverError;

fn field(field: &'static str, index: usize, message: String) -> SolverError {
    SolverError::Field {
        field,
        index,
        message,
    }
}

fn at_least(
    name: &'static str,
    value: Option<i32>,
    min: i32,
    why: &str,
) -> Result<(), SolverError> {
    match value {
        Some(v) if v < min => Err(field(name, 0, format!("{name} {v}: expected {why}"))),
        _ => Ok(()),
    }
}

/// `value` (when written) must be finite and in `[min, max)` (`max` None: no upper bound).
fn real(
    name: &'static str,
    value: Option<f32>,
    min: f32,
    max: Option<f32>,
) -> Result<(), SolverError> {
    let Some(v) = value else { return Ok(()) };
    let ok = v.is_finite() && v >= min && max.is_none_or(|m| v < m);
    if ok {
        return Ok(());
    }
    let range = match max {
        Some(m) => format!("a number in [{min}, {m})"),
        None => format!("a finite number of at least {min}"),
    };
    Err(field(name, 0, format!("{name} {v}: expected {range}")))
}

/// Caffe's meaning of each count and rate; called before anything is built.
pub fn check(p: &SolverParameter) -> Result<(), SolverError> {
    at_least(
        "max_iter",
        p.max_iter,
        0,
        "an iteration count of at least 0",
    )?;
    for (i, &t) in p.test_iter.iter().enumerate() {
        if t < 0 {
            let msg = format!("test_iter {t}: expected a count of test batches of at least 0");
            return Err(field("test_iter", i, msg));
        }
    }
    let interval = "an interval of at least 0 (0: never)";
    at_least("test_interval", p.test_interval, 0, interval)?;
    at_least("display", p.display, 0, interval)?;
    at_least("snapshot", p.snapshot, 0, interval)?;
    at_least(
        "average_loss",
        p.average_loss,
        1,
        "a window of at least 1 iteration",
    )?;
    at_least(
        "iter_size",
        p.iter_size,
        1,
        "a count of at least 1 batch per iteration",
    )?;
    real("base_lr", p.base_lr, 0.0, None)?;
    real("momentum", p.momentum, 0.0, Some(1.0))?;
    real("momentum2", p.momentum2, 0.0, Some(1.0))?;
    real("rms_decay", p.rms_decay, 0.0, Some(1.0))?;
    real("weight_decay", p.weight_decay, 0.0, None)?;
    real("gamma", p.gamma, 0.0, None)?;
    if let Some(d) = p.delta.filter(|d| !(d.is_finite() && *d > 0.0)) {
        return Err(field(
            "delta",
            0,
            format!("delta {d}: expected a number above 0"),
        ));
    }
    if let Some(v) = p.power.filter(|v| !v.is_finite()) {
        return Err(field(
            "power",
            0,
            format!("power {v}: expected a finite number"),
        ));
    }
    let mut last = -1;
    for (i, &s) in p.stepvalue.iter().enumerate() {
        if s <= last {
            let msg =
                format!("stepvalue {s}: expected iterations of at least 0, each after the last");
            return Err(field("stepvalue", i, msg));
        }
        last = s;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: SolverParameter) -> (&'static str, usize, String) {
        match check(&p) {
            Err(SolverError::Field {
                field,
                index,
                message,
            }) => (field, index, message),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn values_outside_caffes_ranges_name_their_field() {
        let base = SolverParameter::default;
        assert!(check(&base()).is_ok());
        let e = err(SolverParameter {
            max_iter: Some(-5),
            ..base()
        });
        assert_eq!(
            e,
            (
                "max_iter",
                0,
                "max_iter -5: expected an iteration count of at least 0".into()
            )
        );
        let e = err(SolverParameter {
            test_iter: vec![3, -1],
            ..base()
        });
        assert_eq!((e.0, e.1), ("test_iter", 1));
        assert_eq!(
            err(SolverParameter {
                momentum: Some(1.0),
                ..base()
            })
            .0,
            "momentum"
        );
        assert_eq!(
            err(SolverParameter {
                momentum: Some(-0.1),
                ..base()
            })
            .0,
            "momentum"
        );
        assert_eq!(
            err(SolverParameter {
                base_lr: Some(-0.01),
                ..base()
            })
            .0,
            "base_lr"
        );
        assert_eq!(
            err(SolverParameter {
                base_lr: Some(f32::NAN),
                ..base()
            })
            .0,
            "base_lr"
        );
        assert_eq!(
            err(SolverParameter {
                display: Some(-1),
                ..base()
            })
            .0,
            "display"
        );
        assert_eq!(
            err(SolverParameter {
                average_loss: Some(0),
                ..base()
            })
            .0,
            "average_loss"
        );
        assert_eq!(
            err(SolverParameter {
                weight_decay: Some(-1.0),
                ..base()
            })
            .0,
            "weight_decay"
        );
        let e = err(SolverParameter {
            stepvalue: vec![10, 10],
            ..base()
        });
        assert_eq!((e.0, e.1), ("stepvalue", 1));
        let ok = SolverParameter {
            momentum: Some(0.9),
            max_iter: Some(0),
            test_interval: Some(0),
            ..base()
        };
        assert!(check(&ok).is_ok());
    }
}
