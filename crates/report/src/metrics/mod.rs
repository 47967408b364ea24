//! Embedding metrics as the metric-learning field reports them (retrieval, clustering,
//! verification with held-out thresholds, k-NN), and 2-D views of wider embeddings.

pub mod clustering;
pub mod knn;
pub mod points;
pub mod projection;
pub mod retrieval;
pub mod tsne;
pub mod verification;

use serde::{Deserialize, Serialize};

use clustering::{KMeansOptions, ami, kmeans, nmi};
pub use points::Points;
use points::squared_distance;
use verification::{ScoredPair, balanced_pairs, best_threshold, fold_accuracy, roc};

/// What to compute beyond the test set itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricOptions {
    /// k of the k-NN vote against the reference.
    pub k: usize,
    /// Folds of the verification accuracy (pair (i, j) in fold i mod folds).
    pub folds: usize,
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions { k: 5, folds: 10 }
    }
}

/// Every metric of one embedding: the keys of `siamese eval`'s JSON line, of summary.csv and
/// of a cell's done.toml.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingMetrics {
    pub points: usize,
    pub classes: usize,
    pub precision_at_1: f64,
    pub r_precision: f64,
    pub map_at_r: f64,
    pub nmi: f64,
    pub ami: f64,
    pub pairs: usize,
    pub roc_auc: f64,
    pub eer: f64,
    pub tar_at_far_0_001: f64,
    pub verification_accuracy_mean: f64,
    pub verification_accuracy_std: f64,
    /// The distance threshold chosen on all of these pairs (what `siamese compare` uses).
    pub verification_threshold: f64,
    /// Accuracy at the threshold tuned on the very pairs it scores: optimistic, kept only to
    /// compare with earlier figures, never a headline.
    pub pair_accuracy_tuned_on_test: f64,
    /// Against the reference embedding, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_accuracy: Option<f64>,
}

/// Whether a larger value of a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

/// A metric a grid can show, sort and prune by: its key, a short column label, and which way
/// is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricInfo {
    pub key: &'static str,
    pub label: &'static str,
    pub direction: Direction,
}

const fn higher(key: &'static str, label: &'static str) -> MetricInfo {
    MetricInfo {
        key,
        label,
        direction: Direction::HigherIsBetter,
    }
}

/// The metrics of [`EmbeddingMetrics`] worth ranking by, in the order tables show them.
pub const RANKED_METRICS: &[MetricInfo] = &[
    higher("precision_at_1", "P@1"),
    higher("r_precision", "R-P"),
    higher("map_at_r", "MAP@R"),
    higher("nmi", "NMI"),
    higher("ami", "AMI"),
    higher("roc_auc", "AUC"),
    MetricInfo {
        key: "eer",
        label: "EER",
        direction: Direction::LowerIsBetter,
    },
    higher("tar_at_far_0_001", "TAR@1e-3"),
    higher("verification_accuracy_mean", "verif"),
    higher("knn_accuracy", "k-NN"),
];

/// The metric called `key`, if there is one.
pub fn metric_info(key: &str) -> Option<&'static MetricInfo> {
    RANKED_METRICS.iter().find(|m| m.key == key)
}

impl EmbeddingMetrics {
    /// The value of the metric called `key` (see [`RANKED_METRICS`], plus the other fields).
    pub fn get(&self, key: &str) -> Option<f64> {
        Some(match key {
            "precision_at_1" => self.precision_at_1,
            "r_precision" => self.r_precision,
            "map_at_r" => self.map_at_r,
            "nmi" => self.nmi,
            "ami" => self.ami,
            "roc_auc" => self.roc_auc,
            "eer" => self.eer,
            "tar_at_far_0_001" => self.tar_at_far_0_001,
            "verification_accuracy_mean" => self.verification_accuracy_mean,
            "verification_accuracy_std" => self.verification_accuracy_std,
            "verification_threshold" => self.verification_threshold,
            "pair_accuracy_tuned_on_test" => self.pair_accuracy_tuned_on_test,
            "knn_accuracy" => return self.knn_accuracy,
            _ => return None,
        })
    }

    /// Every key [`EmbeddingMetrics::get`] answers, in summary.csv's order.
    pub const KEYS: [&'static str; 13] = [
        "precision_at_1",
        "r_precision",
        "map_at_r",
        "nmi",
        "ami",
        "roc_auc",
        "eer",
        "tar_at_far_0_001",
        "verification_accuracy_mean",
        "verification_accuracy_std",
        "verification_threshold",
        "pair_accuracy_tuned_on_test",
        "knn_accuracy",
    ];
}

/// K-means' seed is fixed: the clustering scores are a function of the embedding.
const KMEANS_SEED: u64 = 0;
/// Starts of k-means (scikit-learn's `n_init`).
const KMEANS_STARTS: usize = 10;
/// The false accept rate TAR is read at.
const FAR: f64 = 0.001;

/// The metrics of `test`, with k-NN accuracy against `reference` when given.
pub fn evaluate(
    test: &Points,
    reference: Option<&Points>,
    options: MetricOptions,
) -> EmbeddingMetrics {
    let r = retrieval::retrieval(test);
    let classes = test.classes();
    let clustering = kmeans(
        test,
        KMeansOptions {
            k: classes.len(),
            starts: KMEANS_STARTS,
            max_iterations: 300,
            seed: KMEANS_SEED,
        },
    );
    let truth: Vec<usize> = test.labels.iter().map(|&l| usize::from(l)).collect();
    let pairs = scored_pairs(test);
    let roc = roc(&pairs, FAR);
    let folds = fold_accuracy(&pairs, options.folds);
    let tuned: Vec<(f64, bool)> = pairs.iter().map(|p| (p.distance, p.same)).collect();
    EmbeddingMetrics {
        points: test.len(),
        classes: classes.len(),
        precision_at_1: r.precision_at_1,
        r_precision: r.r_precision,
        map_at_r: r.map_at_r,
        nmi: nmi(&truth, &clustering.assignment),
        ami: ami(&truth, &clustering.assignment),
        pairs: pairs.len(),
        roc_auc: roc.map_or(0.0, |r| r.auc),
        eer: roc.map_or(0.0, |r| r.eer),
        tar_at_far_0_001: roc.map_or(0.0, |r| r.tar_at_far),
        verification_accuracy_mean: folds.mean,
        verification_accuracy_std: folds.std,
        verification_threshold: folds.threshold,
        pair_accuracy_tuned_on_test: best_threshold(&tuned).0,
        knn_accuracy: reference.map(|reference| knn::knn_accuracy(test, reference, options.k)),
    }
}

/// The balanced pairs of the test set (see [`balanced_pairs`]) with their distances.
pub fn scored_pairs(test: &Points) -> Vec<ScoredPair> {
    balanced_pairs(&test.labels)
        .into_iter()
        .map(|(i, j)| ScoredPair {
            first: i,
            distance: squared_distance(test.row(i), test.row(j)).sqrt(),
            same: test.labels[i] == test.labels[j],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ranked_metric_has_a_value_and_keys_cover_get() {
        let features = vec![0.0, 0.1, 5.0, 5.1, 0.2, 5.2];
        let labels = vec![0, 0, 1, 1, 0, 1];
        let p = Points::new(1, features, labels).unwrap();
        let m = evaluate(&p, Some(&p), MetricOptions::default());
        for info in RANKED_METRICS {
            assert!(m.get(info.key).is_some(), "{}", info.key);
        }
        for key in EmbeddingMetrics::KEYS {
            assert!(m.get(key).is_some(), "{key}");
        }
        assert_eq!(
            (m.precision_at_1, m.map_at_r, m.nmi, m.roc_auc),
            (1.0, 1.0, 1.0, 1.0)
        );
        assert_eq!(m.verification_accuracy_mean, 1.0);
        assert_eq!(m.knn_accuracy, Some(1.0));
        assert_eq!(
            metric_info("eer").unwrap().direction,
            Direction::LowerIsBetter
        );
        assert!(metric_info("loss").is_none());
    }
}
