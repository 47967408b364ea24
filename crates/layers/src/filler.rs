//! Parameter initialisation: Caffe's fillers (constant, uniform, gaussian, xavier, msra),
//! drawing from a caller-seeded RNG so the same seed gives the same weights.

use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use siamese_proto::FillerParameter;
use siamese_proto::filler_parameter::VarianceNorm;

use crate::{Blob, LayerError};

/// Caffe's fan-in and fan-out of a weight blob: `count / shape[0]` and `count / shape[1]`
/// (a missing axis counts as 1).
fn fans(shape: &[usize]) -> (f32, f32) {
    let count: usize = shape.iter().product();
    let num = shape.first().copied().unwrap_or(1).max(1);
    let channels = shape.get(1).copied().unwrap_or(1).max(1);
    ((count / num) as f32, (count / channels) as f32)
}

/// The `n` of xavier and msra: fan-in, fan-out or their average, per `variance_norm`.
fn variance_n(p: &FillerParameter, shape: &[usize]) -> f32 {
    let (fan_in, fan_out) = fans(shape);
    match p.variance_norm() {
        VarianceNorm::FanIn => fan_in,
        VarianceNorm::FanOut => fan_out,
        VarianceNorm::Average => (fan_in + fan_out) / 2.0,
    }
}

fn uniform(data: &mut [f32], low: f32, high: f32, rng: &mut impl Rng) -> Result<(), String> {
    if low == high {
        data.fill(low);
        return Ok(());
    }
    let dist = Uniform::new(low, high).map_err(|e| format!("uniform({low}, {high}): {e}"))?;
    data.iter_mut().for_each(|v| *v = dist.sample(rng));
    Ok(())
}

fn gaussian(data: &mut [f32], mean: f32, std: f32, rng: &mut impl Rng) -> Result<(), String> {
    let dist = Normal::new(mean, std).map_err(|e| format!("gaussian({mean}, {std}): {e}"))?;
    data.iter_mut().for_each(|v| *v = dist.sample(rng));
    Ok(())
}

/// Fills `blob.data` as Caffe's filler of `p.type` would (same distributions; the random
/// stream is ours, so the values differ from Caffe's). `what` names the blob in errors.
pub fn fill(
    p: &FillerParameter,
    blob: &mut Blob,
    rng: &mut impl Rng,
    what: &str,
) -> Result<(), LayerError> {
    let shape = blob.shape.clone();
    let data = &mut blob.data;
    let result = match p.r#type() {
        "constant" => {
            data.fill(p.value());
            Ok(())
        }
        "uniform" => uniform(data, p.min(), p.max(), rng),
        "gaussian" => gaussian(data, p.mean(), p.std(), rng).map(|()| {
            // Caffe's sparse gaussian: keep each weight with probability sparse / num_outputs.
            if p.sparse() >= 0 {
                let outputs = shape.first().copied().unwrap_or(1).max(1) as f64;
                let keep = (p.sparse() as f64 / outputs).clamp(0.0, 1.0);
                data.iter_mut().for_each(|v| {
                    if !rng.random_bool(keep) {
                        *v = 0.0;
                    }
                });
            }
        }),
        "xavier" => {
            let scale = (3.0 / variance_n(p, &shape)).sqrt();
            uniform(data, -scale, scale, rng)
        }
        "msra" => gaussian(data, 0.0, (2.0 / variance_n(p, &shape)).sqrt(), rng),
        other => Err(format!(
            "unknown filler type \"{other}\", expected constant, uniform, gaussian, xavier or msra"
        )),
    };
    result.map_err(|message| LayerError::Config {
        layer: what.to_string(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn filler(kind: &str) -> FillerParameter {
        FillerParameter {
            r#type: Some(kind.to_string()),
            ..Default::default()
        }
    }

    fn filled(p: &FillerParameter, shape: &[usize], seed: u64) -> Blob {
        let mut blob = Blob::new(shape);
        fill(p, &mut blob, &mut ChaCha8Rng::seed_from_u64(seed), "test").unwrap();
        blob
    }

    fn max_abs(b: &Blob) -> f32 {
        b.data.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    }

    fn std_dev(b: &Blob) -> f32 {
        let n = b.count() as f64;
        let mean = b.data.iter().map(|&v| v as f64).sum::<f64>() / n;
        (b.data
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt() as f32
    }

    #[test]
    fn xavier_is_uniform_within_sqrt_3_over_fan_in() {
        // conv2 of LeNet: [50, 20, 5, 5], fan_in = 500, fan_out = 1250.
        let b = filled(&filler("xavier"), &[50, 20, 5, 5], 1);
        let bound = (3.0f32 / 500.0).sqrt();
        assert!(max_abs(&b) <= bound);
        assert!(max_abs(&b) > 0.95 * bound, "should reach near the bound");
        let mut p = filler("xavier");
        p.variance_norm = Some(VarianceNorm::FanOut as i32);
        assert!(max_abs(&filled(&p, &[50, 20, 5, 5], 1)) <= (3.0f32 / 1250.0).sqrt());
        p.variance_norm = Some(VarianceNorm::Average as i32);
        let avg = filled(&p, &[50, 20, 5, 5], 1);
        assert!(
            max_abs(&avg) <= (3.0f32 / 875.0).sqrt() && max_abs(&avg) > (3.0f32 / 1250.0).sqrt()
        );
    }

    #[test]
    fn msra_has_std_sqrt_2_over_n() {
        let b = filled(&filler("msra"), &[500, 800], 2);
        let want = (2.0f32 / 800.0).sqrt();
        assert!(
            (std_dev(&b) - want).abs() < 0.02 * want,
            "{} vs {want}",
            std_dev(&b)
        );
    }

    #[test]
    fn constant_uniform_gaussian() {
        let mut p = filler("constant");
        p.value = Some(0.25);
        assert!(filled(&p, &[3], 0).data.iter().all(|&v| v == 0.25));
        let mut p = filler("uniform");
        p.min = Some(-2.0);
        p.max = Some(-1.0);
        assert!(
            filled(&p, &[100], 0)
                .data
                .iter()
                .all(|&v| (-2.0..-1.0).contains(&v))
        );
        let mut p = filler("gaussian");
        p.std = Some(0.1);
        p.mean = Some(3.0);
        let g = filled(&p, &[100, 100], 0);
        assert!((std_dev(&g) - 0.1).abs() < 0.005);
        assert!((g.data.iter().sum::<f32>() / 1e4 - 3.0).abs() < 0.01);
        p.sparse = Some(10); // keep 10 / 100
        let zeros = filled(&p, &[100, 100], 0)
            .data
            .iter()
            .filter(|&&v| v == 0.0)
            .count();
        assert!((8500..9500).contains(&zeros), "{zeros}");
    }

    #[test]
    fn same_seed_same_bits_and_unknown_type_is_an_error() {
        let p = filler("xavier");
        assert_eq!(filled(&p, &[20, 1, 5, 5], 9), filled(&p, &[20, 1, 5, 5], 9));
        assert_ne!(
            filled(&p, &[20, 1, 5, 5], 9),
            filled(&p, &[20, 1, 5, 5], 10)
        );
        let err = fill(
            &filler("bilinear"),
            &mut Blob::new(&[2]),
            &mut ChaCha8Rng::seed_from_u64(0),
            "conv1 weights",
        );
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("unknown filler type \"bilinear\"")
        );
    }
}
