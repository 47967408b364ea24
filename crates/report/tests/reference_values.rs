//! Metrics against established implementations on a fixed embedding. The figures were made by
//! `scripts/metric_refs.py` (run with scikit-learn and pytorch-metric-learning installed): scikit-learn 1.9.1's
//! `normalized_mutual_info_score`, `adjusted_mutual_info_score`, `roc_auc_score` and
//! `roc_curve` (EER and TAR read off its curve as siamese reads its own), and
//! pytorch-metric-learning 2.9.0's AccuracyCalculator with
//! `CustomKNN(LpDistance(normalize_embeddings=False))`, `k="max_bin_count"`, the query set as
//! its own reference. No query there has two neighbours at the same distance.

use siamese_report::metrics::clustering::{ami, nmi};
use siamese_report::metrics::points::{Points, squared_distance};
use siamese_report::metrics::retrieval::retrieval;
use siamese_report::metrics::verification::{ScoredPair, balanced_pairs, roc};

/// 300 points in 5 overlapping classes; integer arithmetic over 16384, exact in f32.
fn embedding() -> (Vec<f32>, Vec<u8>) {
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    for i in 0..300u64 {
        let label = (i * 7) % 5;
        let x = label as f64 * 1.5 + ((i * i * 7919 + 13) % 65521) as f64 / 16384.0;
        let y = (label % 2) as f64 * 2.0 + ((i * 104729 + i * i * 31) % 65519) as f64 / 16384.0;
        features.extend([x as f32, y as f32]);
        labels.push(label as u8);
    }
    (features, labels)
}

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
}

#[test]
fn retrieval_matches_pytorch_metric_learning() {
    let (features, labels) = embedding();
    let r = retrieval(&Points::new(2, features, labels).unwrap());
    close(r.precision_at_1, 0.69);
    close(r.r_precision, 0.5094350282485876);
    close(r.map_at_r, 0.3548503679963813);
    assert_eq!(r.queries, 300);
}

#[test]
fn mutual_information_matches_scikit_learn() {
    let labels: Vec<usize> = (0..300).map(|i| (i * 7) % 5).collect();
    let pred: Vec<usize> = (0..300).map(|i| (i * i + labels[i]) % 4).collect();
    close(nmi(&labels, &pred), 0.45235407972988223);
    close(ami(&labels, &pred), 0.4447528946252762);
    let pred2: Vec<usize> = (0..300)
        .map(|i| {
            if i % 10 == 0 {
                (labels[i] + 1) % 5
            } else {
                labels[i]
            }
        })
        .collect();
    close(nmi(&labels, &pred2), 0.8959171396549677);
    close(ami(&labels, &pred2), 0.8940881697526442);
}

#[test]
fn roc_matches_scikit_learn() {
    let (features, labels) = embedding();
    let p = Points::new(2, features, labels.clone()).unwrap();
    let pairs: Vec<ScoredPair> = balanced_pairs(&labels)
        .into_iter()
        .map(|(i, j)| ScoredPair {
            first: i,
            distance: squared_distance(p.row(i), p.row(j)).sqrt(),
            same: labels[i] == labels[j],
        })
        .collect();
    let r = roc(&pairs, 0.01).unwrap();
    close(r.auc, 0.8649222222222223);
    close(r.tar_at_far, 0.14);
    close(r.eer, 0.20999999999999996);
}
