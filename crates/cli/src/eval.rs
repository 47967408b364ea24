//! `siamese eval`: the metrics metric-learning papers report for an embedding (retrieval,
//! clustering, verification with held-out thresholds, k-NN), as a table and one JSON line.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use siamese_report::metrics::{EmbeddingMetrics, MetricOptions, Points, evaluate};

/// Arguments of `siamese eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Embedding of the test images (CSV from `siamese embed`, or a TUI cell's features.csv).
    #[arg(long)]
    pub features: PathBuf,
    /// Embedding of the reference (training) images, for k-NN accuracy.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Neighbours that vote in k-NN.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Folds of the verification accuracy: pair (i, j) is in fold i mod folds, each scored at
    /// the threshold chosen on the others (the LFW protocol).
    #[arg(long, default_value_t = 10)]
    pub folds: usize,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let m = evaluate_files(args)?;
    print!("{}", table(&m, args));
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// The metrics of the files `args` names.
pub fn evaluate_files(args: &EvalArgs) -> Result<EmbeddingMetrics> {
    if args.k == 0 {
        bail!("--k 0: expected at least 1 neighbour");
    }
    if args.folds < 2 {
        bail!("--folds {}: expected at least 2 folds", args.folds);
    }
    let test = points(&args.features)?;
    if test.len() < 2 {
        bail!(
            "{}: {} point, expected at least 2 to compare",
            args.features.display(),
            test.len()
        );
    }
    let reference = match &args.reference {
        Some(path) => {
            let reference = points(path)?;
            if reference.dim != test.dim {
                bail!(
                    "{} has {} feature columns but {} has {}; they must come from the same net",
                    args.features.display(),
                    test.dim,
                    path.display(),
                    reference.dim
                );
            }
            Some(reference)
        }
        None => None,
    };
    let options = MetricOptions {
        k: args.k,
        folds: args.folds,
    };
    Ok(evaluate(&test, reference.as_ref(), options))
}

fn points(path: &Path) -> Result<Points> {
    let rows = siamese_report::read_features(path)?;
    // The reader checks that every row has the header's columns.
    Ok(Points::from_rows(&rows).expect("rows of one width"))
}

/// The readable table: one line per metric family, values aligned after the labels.
fn table(m: &EmbeddingMetrics, args: &EvalArgs) -> String {
    let mut lines = vec![
        (
            "retrieval, each point against the others".to_string(),
            format!(
                "P@1 {:.4}   R-Precision {:.4}   MAP@R {:.4}",
                m.precision_at_1, m.r_precision, m.map_at_r
            ),
        ),
        (
            format!("clustering, k-means with k = {}", m.classes),
            format!("NMI {:.4}   AMI {:.4}", m.nmi, m.ami),
        ),
        (
            format!("verification, {} balanced pairs", m.pairs),
            format!(
                "ROC AUC {:.4}   EER {:.4}   TAR@FAR=0.001 {:.4}",
                m.roc_auc, m.eer, m.tar_at_far_0_001
            ),
        ),
        (
            format!("verification accuracy, {} held-out folds", args.folds),
            format!(
                "{:.4} ± {:.4}   (threshold on all pairs {:.4})",
                m.verification_accuracy_mean, m.verification_accuracy_std, m.verification_threshold
            ),
        ),
    ];
    if let Some(knn) = m.knn_accuracy {
        lines.push((
            format!("k-NN accuracy against the reference, k = {}", args.k),
            format!("{knn:.4}"),
        ));
    }
    let width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        + 3;
    let mut out = format!(
        "{} test points, {} classes (Euclidean distance)\n",
        m.points, m.classes
    );
    for (label, values) in lines {
        out += &format!("{label:<width$}{values}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, rows: &[(f32, f32, u8)]) -> PathBuf {
        let mut text = String::from("index,label,f0,f1\n");
        for (i, (x, y, l)) in rows.iter().enumerate() {
            text += &format!("{i},{l},{x},{y}\n");
        }
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn args(features: PathBuf, reference: Option<PathBuf>) -> EvalArgs {
        EvalArgs {
            features,
            reference,
            k: 3,
            folds: 2,
        }
    }

    fn cluster(d: u8, n: usize) -> impl Iterator<Item = (f32, f32, u8)> {
        (0..n).map(move |i| (d as f32 * 10.0 + i as f32 * 0.1, 0.0, d))
    }

    #[test]
    fn separated_clusters_score_perfectly_and_mixed_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let reference: Vec<_> = (0..3).flat_map(|d| cluster(d, 5)).collect();
        let test: Vec<_> = (0..3).flat_map(|d| cluster(d, 4)).collect();
        let (test_csv, ref_csv) = (
            write(dir.path(), "test.csv", &test),
            write(dir.path(), "ref.csv", &reference),
        );
        let m = evaluate_files(&args(test_csv.clone(), Some(ref_csv.clone()))).unwrap();
        assert_eq!(m.knn_accuracy, Some(1.0));
        assert_eq!((m.precision_at_1, m.map_at_r, m.roc_auc), (1.0, 1.0, 1.0));
        assert_eq!(m.verification_accuracy_mean, 1.0);
        assert_eq!(m.points, 12);
        let text = table(&m, &args(test_csv, None));
        assert!(
            text.contains("MAP@R 1.0000") && text.contains("k-NN accuracy"),
            "{text}"
        );

        // Labels that ignore the geometry: nothing can be perfect.
        let shuffled: Vec<_> = test
            .iter()
            .enumerate()
            .map(|(i, p)| (p.0, p.1, (i % 3) as u8))
            .collect();
        let bad = write(dir.path(), "bad.csv", &shuffled);
        let m = evaluate_files(&args(bad, Some(ref_csv))).unwrap();
        assert!(m.knn_accuracy.unwrap() < 0.7 && m.map_at_r < 0.7, "{m:?}");
    }

    #[test]
    fn bad_input_is_a_one_line_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.csv", &[(0.0, 0.0, 1), (1.0, 0.0, 2)]);
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let check = |args: EvalArgs, want: &str| {
            let e = format!("{:#}", evaluate_files(&args).unwrap_err());
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        };
        let b = file("b.csv", "f0,label\n1,1\n");
        check(args(a.clone(), Some(b)), "has 2 feature columns but");
        check(
            args(file("one.csv", "f0,label\n1,1\n"), None),
            "one.csv: 1 point, expected at least 2",
        );
        check(args(file("empty.csv", ""), None), "empty.csv");
        check(
            args(file("nan.csv", "f0,label\n1,1\nNaN,2\n"), None),
            "nan.csv: line 3",
        );
        check(
            args(file("nolabel.csv", "f0,f1\n1,1\n"), None),
            "no `label` column",
        );
        check(
            args(file("short.csv", "label,f0,f1\n1,1,2\n2,3\n"), None),
            "short.csv: line 3",
        );
        check(
            EvalArgs {
                folds: 1,
                ..args(a, None)
            },
            "--folds 1",
        );
    }
}
