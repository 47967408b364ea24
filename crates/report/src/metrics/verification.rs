//! Verification on pairs ("same class when the distance is at most a threshold"): the ROC's
//! AUC, EER and TAR at a fixed FAR, and accuracy with thresholds chosen on held-out folds.

/// A scored pair: its distance, and whether the two points share a class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredPair {
    /// Index of the first point (folds are `first mod folds`).
    pub first: usize,
    pub distance: f64,
    pub same: bool,
}

/// Balanced, deterministic verification pairs over `labels`: for each point, one pair with
/// the next point (cyclically) of the same label and one with the next point of another
/// label. A label with a single point gets no similar pair.
pub fn balanced_pairs(labels: &[u8]) -> Vec<(usize, usize)> {
    let n = labels.len();
    let mut pairs = Vec::with_capacity(2 * n);
    for i in 0..n {
        let next = |same: bool| {
            (1..n)
                .map(|s| (i + s) % n)
                .find(|&j| (labels[j] == labels[i]) == same)
        };
        pairs.extend(next(true).map(|j| (i, j)));
        pairs.extend(next(false).map(|j| (i, j)));
    }
    pairs
}

/// ROC figures, from the pairs sorted by distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Roc {
    /// P(a same-class pair is closer than a different-class one), ties counted half.
    pub auc: f64,
    /// Where the false accept rate equals the false reject rate (interpolated on the ROC).
    pub eer: f64,
    /// The highest true accept rate at a threshold whose false accept rate is ≤ `far`.
    pub tar_at_far: f64,
}

/// The ROC of `pairs` (both kinds needed, else `None`), with TAR read at false accept rate
/// `far`. Operating points are the thresholds between distinct distances (and ±∞).
pub fn roc(pairs: &[ScoredPair], far: f64) -> Option<Roc> {
    let mut sorted: Vec<(f64, bool)> = pairs.iter().map(|p| (p.distance, p.same)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|p| p.1).count();
    let negatives = sorted.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // (FAR, TAR) after accepting each group of equal distances.
    let mut curve = vec![(0.0f64, 0.0f64)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < sorted.len() {
        let d = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == d {
            if sorted[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        curve.push((fp as f64 / negatives as f64, tp as f64 / positives as f64));
    }
    let auc = curve
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum();
    let tar_at_far = curve
        .iter()
        .filter(|p| p.0 <= far)
        .map(|p| p.1)
        .fold(0.0, f64::max);
    Some(Roc {
        auc,
        eer: equal_error_rate(&curve),
        tar_at_far,
    })
}

/// The crossing of FAR and FRR = 1 − TAR on a ROC polyline from (0, 0) to (1, 1).
fn equal_error_rate(curve: &[(f64, f64)]) -> f64 {
    for w in curve.windows(2) {
        let (g0, g1) = (1.0 - w[0].1 - w[0].0, 1.0 - w[1].1 - w[1].0);
        if g0 >= 0.0 && g1 <= 0.0 {
            // FRR − FAR goes from g0 ≥ 0 to g1 ≤ 0 along this segment.
            let t = if g0 == g1 { 0.0 } else { g0 / (g0 - g1) };
            return w[0].0 + t * (w[1].0 - w[0].0);
        }
    }
    0.5
}

/// Best accuracy of "same when distance ≤ threshold" over `pairs`, and that threshold:
/// candidates lie midway between consecutive distinct distances, at the largest (all same)
/// and at −∞ (none); the smallest best one wins. Empty input gives `(0, 0)`.
pub fn best_threshold(pairs: &[(f64, bool)]) -> (f64, f64) {
    if pairs.is_empty() {
        return (0.0, 0.0);
    }
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut correct = sorted.iter().filter(|p| !p.1).count();
    let (mut best, mut best_threshold) = (correct, f64::NEG_INFINITY);
    for i in 0..sorted.len() {
        if sorted[i].1 {
            correct += 1;
        } else {
            correct -= 1;
        }
        let next = sorted.get(i + 1).map(|p| p.0);
        if next == Some(sorted[i].0) {
            continue; // a threshold cannot split equal distances
        }
        if correct > best {
            best = correct;
            best_threshold = match next {
                Some(n) => sorted[i].0 + (n - sorted[i].0) / 2.0,
                None => sorted[i].0,
            };
        }
    }
    (best as f64 / sorted.len() as f64, best_threshold)
}

/// Accuracy over `folds` folds (the LFW protocol): pair (i, j) is in fold i mod folds, and
/// each fold is scored at the best threshold of the other folds. Mean and standard deviation
/// (population, ddof 0) over the folds that hold pairs; with one fold, it is its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoldAccuracy {
    pub mean: f64,
    pub std: f64,
    /// The threshold chosen on all pairs (what `siamese compare` uses by default).
    pub threshold: f64,
}

pub fn fold_accuracy(pairs: &[ScoredPair], folds: usize) -> FoldAccuracy {
    let folds = folds.max(1);
    let all: Vec<(f64, bool)> = pairs.iter().map(|p| (p.distance, p.same)).collect();
    let mut accuracies = Vec::with_capacity(folds);
    for f in 0..folds {
        let (held, rest): (Vec<&ScoredPair>, Vec<&ScoredPair>) =
            pairs.iter().partition(|p| p.first % folds == f);
        if held.is_empty() {
            continue;
        }
        let train: Vec<(f64, bool)> = if folds == 1 {
            all.clone()
        } else {
            rest.iter().map(|p| (p.distance, p.same)).collect()
        };
        let (_, threshold) = best_threshold(&train);
        let right = held
            .iter()
            .filter(|p| (p.distance <= threshold) == p.same)
            .count();
        accuracies.push(right as f64 / held.len() as f64);
    }
    let (mean, std) = mean_std(&accuracies);
    FoldAccuracy {
        mean,
        std,
        threshold: best_threshold(&all).1,
    }
}

/// Mean and population standard deviation; (0, 0) for no values.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(usize, f64, bool)]) -> Vec<ScoredPair> {
        v.iter()
            .map(|&(first, distance, same)| ScoredPair {
                first,
                distance,
                same,
            })
            .collect()
    }

    #[test]
    fn separable_pairs_have_a_perfect_roc() {
        let p = pairs(&[
            (0, 0.1, true),
            (1, 0.2, true),
            (2, 1.0, false),
            (3, 2.0, false),
        ]);
        let r = roc(&p, 0.001).unwrap();
        assert_eq!(
            r,
            Roc {
                auc: 1.0,
                eer: 0.0,
                tar_at_far: 1.0
            }
        );
    }

    /// By hand: distances 1(S) 2(D) 3(S) 4(D). ROC points after each: (0, .5) (.5, .5)
    /// (.5, 1) (1, 1): AUC = .5·.5 + .5·1 = .75. FRR − FAR: 1, .5, 0 at (.5, .5): EER .5.
    /// TAR at FAR 0: .5.
    #[test]
    fn interleaved_pairs_by_hand() {
        let p = pairs(&[
            (0, 1.0, true),
            (1, 2.0, false),
            (2, 3.0, true),
            (3, 4.0, false),
        ]);
        let r = roc(&p, 0.0).unwrap();
        assert!((r.auc - 0.75).abs() < 1e-12, "{r:?}");
        assert!((r.eer - 0.5).abs() < 1e-12, "{r:?}");
        assert_eq!(r.tar_at_far, 0.5);
    }

    #[test]
    fn ties_count_half_in_the_auc() {
        let p = pairs(&[(0, 1.0, true), (1, 1.0, false)]);
        let r = roc(&p, 0.001).unwrap();
        assert!((r.auc - 0.5).abs() < 1e-12);
        assert!((r.eer - 0.5).abs() < 1e-12);
        assert_eq!(r.tar_at_far, 0.0);
        assert_eq!(roc(&pairs(&[(0, 1.0, true)]), 0.1), None);
    }

    #[test]
    fn best_threshold_as_before() {
        let p = [
            (5.0, false),
            (3.0, true),
            (1.0, true),
            (2.0, false),
            (4.0, false),
        ];
        assert_eq!(best_threshold(&p), (0.8, 1.5));
        assert_eq!(
            best_threshold(&[(1.0, false), (2.0, false)]),
            (1.0, f64::NEG_INFINITY)
        );
        assert_eq!(
            best_threshold(&[(1.0, true), (1.0, false), (2.0, false)]).1,
            f64::NEG_INFINITY
        );
    }

    /// Two folds. Fold 0 (first even): (0, 1 S) (2, 3 D); fold 1: (1, 2 S) (3, 2.5 D).
    /// Threshold from fold 1 alone: between 2 and 2.5 -> 2.25; on fold 0: 1 ≤ 2.25 S right,
    /// 3 > 2.25 D right: 1. From fold 0 alone: 2 (midway 1..3); on fold 1: 2 ≤ 2 S right,
    /// 2.5 > 2 D right: 1.
    #[test]
    fn folds_score_with_thresholds_from_the_others() {
        let p = pairs(&[
            (0, 1.0, true),
            (2, 3.0, false),
            (1, 2.0, true),
            (3, 2.5, false),
        ]);
        let f = fold_accuracy(&p, 2);
        assert_eq!((f.mean, f.std), (1.0, 0.0));
        // Fold 1's own best would be a threshold fold 0 contradicts: mean below 1.
        let p = pairs(&[
            (0, 3.0, true),
            (2, 1.0, false),
            (1, 2.0, true),
            (3, 2.5, false),
        ]);
        let f = fold_accuracy(&p, 2);
        assert!(f.mean < 1.0, "{f:?}");
    }

    #[test]
    fn mean_std_population() {
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 1.0));
        assert_eq!(mean_std(&[]), (0.0, 0.0));
    }

    #[test]
    fn balanced_pairs_pair_each_point_twice() {
        let pairs = balanced_pairs(&[1, 2, 1, 2, 3]);
        assert_eq!(
            pairs,
            vec![
                (0, 2),
                (0, 1),
                (1, 3),
                (1, 2),
                (2, 0),
                (2, 3),
                (3, 1),
                (3, 4),
                (4, 0)
            ]
        );
    }
}
