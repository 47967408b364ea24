//! k-nearest-neighbour accuracy of test points against a reference embedding (majority vote).

use super::points::Points;

/// Fraction of `test` points whose label wins a majority vote among their `k` nearest
/// `reference` points (Euclidean). A tie between labels goes to the tied label whose member is
/// nearest. `k` is clamped to `1..=reference.len()`; an empty set gives 0.
pub fn knn_accuracy(test: &Points, reference: &Points, k: usize) -> f64 {
    if test.is_empty() || reference.is_empty() {
        return 0.0;
    }
    let k = k.clamp(1, reference.len());
    let mut dists: Vec<(f32, u8)> = Vec::with_capacity(reference.len());
    let mut correct = 0usize;
    for q in 0..test.len() {
        let query = test.row(q);
        dists.clear();
        dists.extend(
            (0..reference.len()).map(|r| (euclidean(query, reference.row(r)), reference.labels[r])),
        );
        if k < dists.len() {
            dists.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        }
        let nearest = &mut dists[..k];
        nearest.sort_by(|a, b| a.0.total_cmp(&b.0));
        if vote(nearest) == test.labels[q] {
            correct += 1;
        }
    }
    correct as f64 / test.len() as f64
}

/// Euclidean distance in f32, as k-NN accuracy has always been computed here (its figures in
/// earlier summaries stay comparable).
fn euclidean(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// The majority label of `neighbours` (sorted nearest first); ties go to the label seen first.
fn vote(neighbours: &[(f32, u8)]) -> u8 {
    let mut counts = [0usize; 256];
    neighbours
        .iter()
        .for_each(|(_, l)| counts[*l as usize] += 1);
    let best = counts.iter().copied().max().unwrap_or(0);
    neighbours
        .iter()
        .map(|(_, l)| *l)
        .find(|l| counts[*l as usize] == best)
        .unwrap_or(0)
}
