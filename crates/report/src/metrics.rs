//! How good is an embedding: k-nearest-neighbour accuracy and pair-verification accuracy.
//! Plain `std` code over `(features, digit)` points, shared by `siamese eval` and the TUI.

use std::cmp::Ordering;

/// Euclidean distance between two feature vectors (over their common length).
pub fn euclidean(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// Fraction of `test` points whose label wins a majority vote among their `k` nearest
/// `reference` points (Euclidean). A tie between labels goes to the tied label whose member
/// is nearest. `k` is clamped to `1..=reference.len()`; an empty `test` or `reference`
/// gives 0.0. Cost: `test.len() × reference.len()` distances.
pub fn knn_accuracy(test: &[(Vec<f32>, u8)], reference: &[(Vec<f32>, u8)], k: usize) -> f64 {
    if test.is_empty() || reference.is_empty() {
        return 0.0;
    }
    let k = k.clamp(1, reference.len());
    let mut dists: Vec<(f32, u8)> = Vec::with_capacity(reference.len());
    let mut correct = 0usize;
    for (features, label) in test {
        dists.clear();
        dists.extend(reference.iter().map(|(r, l)| (euclidean(features, r), *l)));
        if k < dists.len() {
            dists.select_nth_unstable_by(k - 1, |a, b| by_distance(a.0, b.0));
        }
        let nearest = &mut dists[..k];
        nearest.sort_by(|a, b| by_distance(a.0, b.0));
        if vote(nearest) == *label {
            correct += 1;
        }
    }
    correct as f64 / test.len() as f64
}

/// The majority label of `neighbours` (sorted nearest first); ties go to the label seen first.
fn vote(neighbours: &[(f32, u8)]) -> u8 {
    let mut counts = [0usize; 256];
    for (_, l) in neighbours {
        counts[*l as usize] += 1;
    }
    let best = counts.iter().copied().max().unwrap_or(0);
    neighbours
        .iter()
        .map(|(_, l)| *l)
        .find(|l| counts[*l as usize] == best)
        .unwrap_or(0)
}

/// Total order on distances with NaN last, so a broken point never wins.
fn by_distance(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}

/// Best accuracy of the rule "similar when distance <= threshold" over `(distance, similar)`
/// pairs, and that threshold. Candidate thresholds lie between consecutive distinct sorted
/// distances (the midpoint), at the largest distance (everything similar) and at −∞
/// (nothing similar); the smallest best threshold wins. Empty input gives `(0.0, 0.0)`.
pub fn pair_accuracy(pairs: &[(f32, bool)]) -> (f64, f32) {
    if pairs.is_empty() {
        return (0.0, 0.0);
    }
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| by_distance(a.0, b.0));
    // Nothing predicted similar: every dissimilar pair is right.
    let mut correct = sorted.iter().filter(|p| !p.1).count();
    let (mut best, mut best_threshold) = (correct, f32::NEG_INFINITY);
    for i in 0..sorted.len() {
        // Moving pair i to "similar" gains it if similar, loses it otherwise.
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

/// `(distance, similar)` for index pairs into an embedding: similar when the digits match.
/// Indices out of range are skipped.
pub fn pair_distances(embedding: &[(Vec<f32>, u8)], pairs: &[(usize, usize)]) -> Vec<(f32, bool)> {
    pairs
        .iter()
        .filter_map(|&(a, b)| {
            let (fa, la) = embedding.get(a)?;
            let (fb, lb) = embedding.get(b)?;
            Some((euclidean(fa, fb), la == lb))
        })
        .collect()
}

/// Balanced, deterministic verification pairs over `labels`: for each point, one pair with
/// the next point (cyclically) of the same digit and one with the next point of another
/// digit. A digit with a single point gets no similar pair.
pub fn balanced_pairs(labels: &[u8]) -> Vec<(usize, usize)> {
    let n = labels.len();
    let mut pairs = Vec::with_capacity(2 * n);
    for i in 0..n {
        let next = |same: bool| {
            (1..n)
                .map(|s| (i + s) % n)
                .find(|&j| (labels[j] == labels[i]) == same)
        };
        if let Some(j) = next(true) {
            pairs.push((i, j));
        }
        if let Some(j) = next(false) {
            pairs.push((i, j));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f32, y: f32, l: u8) -> (Vec<f32>, u8) {
        (vec![x, y], l)
    }

    #[test]
    fn euclidean_is_the_straight_line() {
        assert_eq!(euclidean(&[0.0, 0.0], &[3.0, 4.0]), 5.0);
    }

    #[test]
    fn knn_votes_by_majority() {
        // Two clusters: digit 1 near the origin, digit 7 near (10, 10).
        let reference = vec![
            pt(0.0, 0.0, 1),
            pt(0.0, 1.0, 1),
            pt(1.0, 0.0, 1),
            pt(10.0, 10.0, 7),
            pt(10.0, 11.0, 7),
            pt(11.0, 10.0, 7),
        ];
        let test = vec![pt(0.5, 0.5, 1), pt(10.5, 10.5, 7), pt(9.0, 9.0, 1)];
        assert!((knn_accuracy(&test, &reference, 3) - 2.0 / 3.0).abs() < 1e-12);
        // k = 1 on a point sitting next to a 7 but labelled 7: right.
        assert_eq!(knn_accuracy(&[pt(10.1, 10.0, 7)], &reference, 1), 1.0);
    }

    #[test]
    fn knn_majority_beats_the_single_nearest() {
        // Nearest is a 3, but the next two are 5s: majority says 5.
        let reference = vec![pt(1.0, 0.0, 3), pt(2.0, 0.0, 5), pt(2.1, 0.0, 5)];
        assert_eq!(knn_accuracy(&[pt(0.0, 0.0, 5)], &reference, 3), 1.0);
        assert_eq!(knn_accuracy(&[pt(0.0, 0.0, 5)], &reference, 1), 0.0);
    }

    #[test]
    fn knn_tie_goes_to_the_nearest() {
        // k = 2: one 4 at distance 1 and one 9 at distance 2: tie, the 4 is nearer.
        let reference = vec![pt(2.0, 0.0, 9), pt(1.0, 0.0, 4)];
        assert_eq!(knn_accuracy(&[pt(0.0, 0.0, 4)], &reference, 2), 1.0);
        assert_eq!(knn_accuracy(&[pt(0.0, 0.0, 9)], &reference, 2), 0.0);
    }

    #[test]
    fn knn_clamps_k_and_handles_empty_sets() {
        let reference = vec![pt(0.0, 0.0, 2)];
        assert_eq!(knn_accuracy(&[pt(5.0, 5.0, 2)], &reference, 10), 1.0);
        assert_eq!(knn_accuracy(&[pt(5.0, 5.0, 2)], &reference, 0), 1.0);
        assert_eq!(knn_accuracy(&[], &reference, 1), 0.0);
        assert_eq!(knn_accuracy(&[pt(0.0, 0.0, 2)], &[], 1), 0.0);
    }

    #[test]
    fn pair_accuracy_finds_the_separating_threshold() {
        let pairs = [(0.5, true), (1.0, true), (3.0, false), (4.0, false)];
        assert_eq!(pair_accuracy(&pairs), (1.0, 2.0));
    }

    #[test]
    fn pair_accuracy_with_overlap() {
        // Sorted: 1 similar, 2 dissimilar, 3 similar, 4 and 5 dissimilar. Thresholds 1.5 and
        // 3.5 both get 4 of 5 right; the smaller wins.
        let pairs = [
            (5.0, false),
            (3.0, true),
            (1.0, true),
            (2.0, false),
            (4.0, false),
        ];
        assert_eq!(pair_accuracy(&pairs), (0.8, 1.5));
    }

    #[test]
    fn pair_accuracy_edge_thresholds() {
        // All dissimilar: predicting nothing similar is perfect.
        assert_eq!(
            pair_accuracy(&[(1.0, false), (2.0, false)]),
            (1.0, f32::NEG_INFINITY)
        );
        // All similar: threshold at the largest distance.
        assert_eq!(pair_accuracy(&[(1.0, true), (2.0, true)]), (1.0, 2.0));
        assert_eq!(pair_accuracy(&[]), (0.0, 0.0));
    }

    #[test]
    fn pair_accuracy_does_not_split_ties() {
        // Equal distances with different answers cannot be separated.
        let pairs = [(1.0, true), (1.0, false), (2.0, false)];
        assert_eq!(pair_accuracy(&pairs), (2.0 / 3.0, f32::NEG_INFINITY));
    }

    #[test]
    fn pair_distances_use_digits_for_similarity() {
        let emb = vec![pt(0.0, 0.0, 1), pt(3.0, 4.0, 1), pt(0.0, 1.0, 2)];
        let d = pair_distances(&emb, &[(0, 1), (0, 2), (0, 9)]);
        assert_eq!(d, vec![(5.0, true), (1.0, false)]);
    }

    #[test]
    fn balanced_pairs_pair_each_point_twice() {
        let labels = [1, 2, 1, 2, 3];
        let pairs = balanced_pairs(&labels);
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
