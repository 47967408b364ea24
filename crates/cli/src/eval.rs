//! `siamese eval`: how good an embedding is: k-NN accuracy of the test points against a
//! reference embedding, and pair-verification accuracy at the best distance threshold.

use std::path::PathBuf;

use anyhow::{Result, bail};
use siamese_report::metrics::{balanced_pairs, knn_accuracy, pair_accuracy, pair_distances};
use siamese_report::read_features;

/// Arguments of `siamese eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Embedding of the test images (CSV from `siamese embed`).
    #[arg(long)]
    pub features: PathBuf,
    /// Embedding of the reference (training) images.
    #[arg(long)]
    pub reference: PathBuf,
    /// Neighbours that vote in k-NN.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
}

/// The figures `siamese eval` reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalReport {
    pub k: usize,
    pub test_points: usize,
    pub reference_points: usize,
    pub knn_accuracy: f64,
    /// Balanced test pairs: for each test point one with the next point of the same digit
    /// and one with the next point of another digit.
    pub pairs: usize,
    pub pair_accuracy: f64,
    pub pair_threshold: f32,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let report = evaluate(args)?;
    println!(
        "k-NN accuracy (k = {}): {:.4} ({} test points against {} reference points)",
        report.k, report.knn_accuracy, report.test_points, report.reference_points
    );
    println!(
        "pair verification accuracy: {:.4} at distance threshold {} ({} test pairs)",
        report.pair_accuracy, report.pair_threshold, report.pairs
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

pub fn evaluate(args: &EvalArgs) -> Result<EvalReport> {
    if args.k == 0 {
        bail!("--k 0: expected at least 1 neighbour");
    }
    let test = read_features(&args.features)?;
    let reference = read_features(&args.reference)?;
    let (dt, dr) = (test[0].0.len(), reference[0].0.len());
    if dt != dr {
        bail!(
            "{} has {dt} feature columns but {} has {dr}; they must come from the same net",
            args.features.display(),
            args.reference.display()
        );
    }
    let labels: Vec<u8> = test.iter().map(|p| p.1).collect();
    let pairs = pair_distances(&test, &balanced_pairs(&labels));
    let (pair_acc, threshold) = pair_accuracy(&pairs);
    Ok(EvalReport {
        k: args.k,
        test_points: test.len(),
        reference_points: reference.len(),
        knn_accuracy: knn_accuracy(&test, &reference, args.k),
        pairs: pairs.len(),
        pair_accuracy: pair_acc,
        pair_threshold: threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, rows: &[(f32, f32, u8)]) -> PathBuf {
        let mut text = String::from("f0,f1,label\n");
        for (x, y, l) in rows {
            text += &format!("{x},{y},{l}\n");
        }
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn separated_clusters_score_perfectly_and_mixed_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let cluster =
            |d: u8, n: usize| (0..n).map(move |i| (d as f32 * 10.0 + i as f32 * 0.1, 0.0, d));
        let reference: Vec<_> = (0..3).flat_map(|d| cluster(d, 5)).collect();
        let test: Vec<_> = (0..3).flat_map(|d| cluster(d, 3)).collect();
        let args = EvalArgs {
            features: write(dir.path(), "test.csv", &test),
            reference: write(dir.path(), "ref.csv", &reference),
            k: 3,
        };
        let r = evaluate(&args).unwrap();
        assert_eq!(r.knn_accuracy, 1.0);
        assert_eq!(r.pair_accuracy, 1.0);
        assert_eq!(r.test_points, 9);
        assert!(
            r.pair_threshold > 0.2 && r.pair_threshold < 10.0,
            "{}",
            r.pair_threshold
        );

        // labels that ignore the geometry: k-NN cannot be perfect
        let shuffled: Vec<_> = test
            .iter()
            .enumerate()
            .map(|(i, p)| (p.0, p.1, (i % 3) as u8))
            .collect();
        let args = EvalArgs {
            features: write(dir.path(), "bad.csv", &shuffled),
            ..args
        };
        assert!(evaluate(&args).unwrap().knn_accuracy < 0.7);
    }

    #[test]
    fn mismatched_dimensions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.csv", &[(0.0, 0.0, 1)]);
        let b = dir.path().join("b.csv");
        std::fs::write(&b, "f0,label\n1,1\n").unwrap();
        let e = evaluate(&EvalArgs {
            features: a,
            reference: b,
            k: 1,
        })
        .unwrap_err();
        assert!(e.to_string().contains("2 feature columns"), "{e}");
    }
}
