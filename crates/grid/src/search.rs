//! Sampled search spaces, the `[search]` table: `log_uniform(a, b)`, `uniform(a, b)`,
//! `int_uniform(a, b)` and `choice([...])`, drawn `samples` times from a seeded ChaCha8.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::experiment::AxisValue;

/// What one `[search]` key draws from.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// Uniform on `[low, high)`.
    Uniform { low: f64, high: f64 },
    /// `exp` of a uniform on `[ln low, ln high)`: each decade equally likely.
    LogUniform { low: f64, high: f64 },
    /// A whole number in `low..=high`, each equally likely.
    IntUniform { low: u64, high: u64 },
    /// One of the values, each equally likely.
    Choice(Vec<AxisValue>),
}

/// What values a key takes, which decides the distributions that fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxisKind {
    Real,
    Whole,
    /// Text or true/false: `choice` only.
    Other,
}

/// One `[search]` key and its distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub key: &'static str,
    pub distribution: Distribution,
}

/// The `[search]` table: `samples` points drawn from `dimensions` with `seed`.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub dimensions: Vec<Dimension>,
    pub samples: u32,
    pub seed: u64,
}

/// Significant digits a sampled float keeps: readable cell ids, and more than a
/// hyperparameter needs.
const SIGNIFICANT_DIGITS: i32 = 4;

impl Search {
    /// The sampled points, in order: point `s` draws every dimension in order, all from one
    /// ChaCha8 stream seeded with `seed`, so a file and seed give the same points anywhere.
    pub fn points(&self) -> Vec<Vec<(&'static str, AxisValue)>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        (0..self.samples)
            .map(|_| {
                self.dimensions
                    .iter()
                    .map(|d| (d.key, d.distribution.draw(&mut rng)))
                    .collect()
            })
            .collect()
    }
}

impl Distribution {
    /// One value from `rng`.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> AxisValue {
        match self {
            Distribution::Uniform { low, high } => {
                AxisValue::Float(round(low + (high - low) * rng.random::<f64>()))
            }
            Distribution::LogUniform { low, high } => {
                let (a, b) = (low.ln(), high.ln());
                AxisValue::Float(round((a + (b - a) * rng.random::<f64>()).exp()))
            }
            Distribution::IntUniform { low, high } => {
                AxisValue::Int(rng.random_range(*low..=*high))
            }
            Distribution::Choice(values) => values[rng.random_range(0..values.len())].clone(),
        }
    }

    /// Parses `name(arguments)` as written in an experiment file; `Err` says what was
    /// expected. `kind` tells which distributions fit the key; `parse_choice` reads a
    /// `choice` list as the key's values.
    pub fn parse(
        text: &str,
        kind: AxisKind,
        parse_choice: &dyn Fn(&str) -> Result<Vec<AxisValue>, String>,
    ) -> Result<Distribution, String> {
        let text = text.trim();
        let (name, args) = text
            .split_once('(')
            .and_then(|(n, rest)| Some((n.trim(), rest.trim_end().strip_suffix(')')?)))
            .ok_or_else(|| format!("`{text}`: expected {KINDS}"))?;
        let fits = match (name, kind) {
            ("uniform" | "log_uniform", AxisKind::Whole) => {
                Some("int_uniform(a, b) or choice([...])")
            }
            ("int_uniform", AxisKind::Real) => {
                Some("uniform(a, b), log_uniform(a, b) or choice([...])")
            }
            ("uniform" | "log_uniform" | "int_uniform", AxisKind::Other) => Some("choice([...])"),
            _ => None,
        };
        if let Some(instead) = fits {
            let takes = match kind {
                AxisKind::Real => "real numbers",
                AxisKind::Whole => "whole numbers",
                AxisKind::Other => "a value from a list",
            };
            return Err(format!(
                "{name} does not fit this key, which takes {takes}: use {instead}"
            ));
        }
        match name {
            "uniform" => {
                let (low, high) = float_bounds(args)?;
                Ok(Distribution::Uniform { low, high })
            }
            "log_uniform" => {
                let (low, high) = float_bounds(args)?;
                if low <= 0.0 {
                    return Err(format!(
                        "log_uniform({args}): bounds must be above 0, got {low}"
                    ));
                }
                Ok(Distribution::LogUniform { low, high })
            }
            "int_uniform" => {
                let (low, high) = bounds(args, |s| s.parse::<u64>().ok(), "a whole number ≥ 0")?;
                Ok(Distribution::IntUniform { low, high })
            }
            "choice" => {
                let values = parse_choice(args)?;
                if values.is_empty() {
                    return Err("choice([]): list at least one value".to_string());
                }
                Ok(Distribution::Choice(values))
            }
            other => Err(format!("unknown distribution `{other}`: expected {KINDS}")),
        }
    }
}

const KINDS: &str = "log_uniform(a, b), uniform(a, b), int_uniform(a, b) or choice([...])";

fn float_bounds(args: &str) -> Result<(f64, f64), String> {
    bounds(
        args,
        |s| s.parse::<f64>().ok().filter(|x| x.is_finite()),
        "a number",
    )
}

/// `a, b` with `a < b`, each read by `parse`.
fn bounds<T: PartialOrd + std::fmt::Display + Copy>(
    args: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<(T, T), String> {
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    let [a, b] = parts[..] else {
        return Err(format!("`({args})`: expected two bounds, `(a, b)`"));
    };
    let read = |s: &str| parse(s).ok_or_else(|| format!("bound `{s}`: expected {expected}"));
    let (low, high) = (read(a)?, read(b)?);
    if low >= high {
        return Err(format!(
            "bounds ({low}, {high}): the first must be below the second"
        ));
    }
    Ok((low, high))
}

/// `x` to [`SIGNIFICANT_DIGITS`] significant digits.
fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(SIGNIFICANT_DIGITS - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_choice(_: &str) -> Result<Vec<AxisValue>, String> {
        Err("no choice here".into())
    }

    fn parse(text: &str, real: bool) -> Result<Distribution, String> {
        let kind = if real {
            AxisKind::Real
        } else {
            AxisKind::Whole
        };
        Distribution::parse(text, kind, &no_choice)
    }

    #[test]
    fn distributions_parse_with_their_bounds() {
        assert_eq!(
            parse("log_uniform(1e-4, 0.1)", true),
            Ok(Distribution::LogUniform {
                low: 1e-4,
                high: 0.1
            })
        );
        assert_eq!(
            parse(" uniform( 0.5 , 4 ) ", true),
            Ok(Distribution::Uniform {
                low: 0.5,
                high: 4.0
            })
        );
        assert_eq!(
            parse("int_uniform(16, 128)", false),
            Ok(Distribution::IntUniform { low: 16, high: 128 })
        );
    }

    #[test]
    fn bad_distributions_say_what_was_expected() {
        let err = |t: &str, f: bool| parse(t, f).unwrap_err();
        assert!(err("normal(0, 1)", true).starts_with("unknown distribution `normal`"));
        assert!(err("uniform(0, x)", true).contains("bound `x`: expected a number"));
        assert!(err("uniform(2, 1)", true).contains("the first must be below the second"));
        assert!(err("uniform(1, 1)", true).contains("the first must be below the second"));
        assert!(err("log_uniform(0, 1)", true).contains("must be above 0"));
        assert!(err("log_uniform(-1, 1)", true).contains("must be above 0"));
        assert!(err("uniform(1)", true).contains("expected two bounds"));
        assert!(err("uniform 1, 2", true).contains("expected log_uniform(a, b)"));
        assert!(err("int_uniform(1, 4)", true).contains("takes real numbers: use uniform"));
        assert!(err("uniform(1, 4)", false).contains("takes whole numbers: use int_uniform"));
        let other = Distribution::parse("uniform(0, 1)", AxisKind::Other, &no_choice);
        assert!(other.unwrap_err().contains("use choice([...])"));
        assert!(err("int_uniform(-1, 4)", false).contains("a whole number"));
    }

    #[test]
    fn draws_stay_in_bounds_and_repeat_with_the_seed() {
        let search = Search {
            dimensions: vec![
                Dimension {
                    key: "base_lr",
                    distribution: Distribution::LogUniform {
                        low: 1e-4,
                        high: 1e-1,
                    },
                },
                Dimension {
                    key: "batch_size",
                    distribution: Distribution::IntUniform { low: 16, high: 20 },
                },
            ],
            samples: 200,
            seed: 7,
        };
        let points = search.points();
        assert_eq!(points, search.points(), "same seed, same points");
        assert_ne!(
            points,
            Search {
                seed: 8,
                ..search.clone()
            }
            .points()
        );
        let mut decades = [0; 3];
        for p in &points {
            let (AxisValue::Float(lr), AxisValue::Int(b)) = (&p[0].1, &p[1].1) else {
                panic!("{p:?}");
            };
            assert!((1e-4..=1e-1).contains(lr), "{lr}");
            assert!((16..=20).contains(b), "{b}");
            decades[((lr.log10() + 4.0).floor() as usize).min(2)] += 1;
        }
        // Log-uniform: about a third of the draws in each decade.
        assert!(
            decades.iter().all(|&n| (40..=95).contains(&n)),
            "{decades:?}"
        );
    }

    #[test]
    fn floats_keep_four_significant_digits() {
        assert_eq!(round(0.000123456), 0.0001235);
        assert_eq!(round(1.23456), 1.235);
        assert_eq!(round(98765.4), 98770.0);
    }
}
