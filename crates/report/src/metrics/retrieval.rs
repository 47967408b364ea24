//! Retrieval scores, test as query against the rest of the test set (the query excluded, as
//! pytorch-metric-learning's AccuracyCalculator): Precision@1, R-Precision and MAP@R.

use rayon::prelude::*;

use super::points::{Points, squared_distance_f32};

/// Retrieval scores averaged over the queries that have at least one other point of their
/// class (R > 0); `queries` counts them. With no such query every score is 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retrieval {
    pub precision_at_1: f64,
    pub r_precision: f64,
    pub map_at_r: f64,
    pub queries: usize,
}

/// For each query with label c, R = the number of other points labelled c; its R nearest
/// others (ties in distance to the lower index) give R-Precision = hits / R and
/// MAP@R = (1/R) Σ_{i ≤ R} P(i)·rel(i). The R nearest come from a partial selection
/// (`select_nth_unstable`, O(n)) and a sort of those R only, not a sort of all n per query.
pub fn retrieval(points: &Points) -> Retrieval {
    let n = points.len();
    let mut class_size = [0usize; 256];
    points
        .labels
        .iter()
        .for_each(|&l| class_size[l as usize] += 1);
    let per_query: Vec<Option<[f64; 3]>> = (0..n)
        .into_par_iter()
        .map_init(Vec::new, |ranked, q| {
            let r = class_size[points.labels[q] as usize] - 1;
            (r > 0).then(|| query_scores(points, q, r, ranked))
        })
        .collect();
    let scored: Vec<[f64; 3]> = per_query.into_iter().flatten().collect();
    if scored.is_empty() {
        return Retrieval {
            precision_at_1: 0.0,
            r_precision: 0.0,
            map_at_r: 0.0,
            queries: 0,
        };
    }
    // Summed in query order: the same bits on any number of threads.
    let mean = |k: usize| scored.iter().map(|s| s[k]).sum::<f64>() / scored.len() as f64;
    Retrieval {
        precision_at_1: mean(0),
        r_precision: mean(1),
        map_at_r: mean(2),
        queries: scored.len(),
    }
}

/// [P@1, R-Precision, MAP@R] of query `q` whose class has `r` other points.
fn query_scores(points: &Points, q: usize, r: usize, ranked: &mut Vec<u64>) -> [f64; 3] {
    let nearest = nearest_others(points, q, r, ranked);
    let label = points.labels[q];
    let (mut hits, mut precision_sum) = (0usize, 0.0f64);
    for (i, &key) in nearest.iter().enumerate() {
        if points.labels[index_of(key)] == label {
            hits += 1;
            precision_sum += hits as f64 / (i + 1) as f64;
        }
    }
    let first = f64::from(u8::from(points.labels[index_of(nearest[0])] == label));
    [first, hits as f64 / r as f64, precision_sum / r as f64]
}

/// The `k` points nearest to `q` other than `q`, nearest first, ties to the lower index, as
/// indices. Each candidate is one `u64` key (the non-negative f32 distance's bits, which order
/// as the distances do, then the index), so selection and sorting compare integers.
pub(crate) fn nearest_others<'r>(
    points: &Points,
    q: usize,
    k: usize,
    ranked: &'r mut Vec<u64>,
) -> &'r [u64] {
    let query = points.row(q);
    ranked.clear();
    ranked.extend((0..points.len()).filter(|&j| j != q).map(|j| {
        let d = squared_distance_f32(query, points.row(j));
        (u64::from(d.to_bits()) << 32) | j as u64
    }));
    let k = k.min(ranked.len());
    if k < ranked.len() {
        ranked.select_nth_unstable(k);
    }
    let nearest = &mut ranked[..k];
    nearest.sort_unstable();
    nearest
}

/// The point index of a key made by [`nearest_others`].
pub(crate) fn index_of(key: u64) -> usize {
    (key & 0xffff_ffff) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(features: &[f32], labels: &[u8]) -> Retrieval {
        retrieval(&Points::new(1, features.to_vec(), labels.to_vec()).unwrap())
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// By hand: points on a line at 0, 1, 2, 10 labelled a a b a.
    /// Query 0 (a, R = 2): others by distance 1(a) 2(b) 10(a): P@1 1, R-P 1/2, MAP@R (1/1)/2.
    /// Query 1 (a, R = 2): 0(a) and 2(b) tie at 1 -> lower index 0 first, then 2(b):
    ///   P@1 1, R-P 1/2, MAP (1)/2.
    /// Query 3 (a, R = 2): 2(b) at 8, 1(a) at 9: P@1 0, R-P 1/2, MAP (1/2)/2.
    /// Query 2 (b) has R = 0: left out.
    #[test]
    fn hand_computed_line() {
        let s = scores(&[0.0, 1.0, 2.0, 10.0], &[0, 0, 1, 0]);
        assert_eq!(s.queries, 3);
        assert!(close(s.precision_at_1, 2.0 / 3.0), "{s:?}");
        assert!(close(s.r_precision, 0.5), "{s:?}");
        assert!(close(s.map_at_r, (0.5 + 0.5 + 0.25) / 3.0), "{s:?}");
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        // Query 1 sees 0 (label 1) and 2 (label 0) at the same distance: 0 comes first.
        let s = scores(&[0.0, 1.0, 2.0, 2.0], &[1, 0, 0, 1]);
        // Query 1 (label 0, R = 1): nearest 0 (label 1): miss.
        let mut ranked = Vec::new();
        let p = Points::new(1, vec![0.0, 1.0, 2.0, 2.0], vec![1, 0, 0, 1]).unwrap();
        assert_eq!(index_of(nearest_others(&p, 1, 3, &mut ranked)[0]), 0);
        assert_eq!(s.queries, 4);
    }

    #[test]
    fn all_identical_points_rank_by_index() {
        // Every distance 0: a query's neighbours are the others in index order.
        let s = scores(&[5.0; 4], &[0, 1, 0, 1]);
        // Query 0: others 1(b) 2(a) 3(b), R = 1: P@1 0, R-P 0, MAP 0.
        // Query 1: 0(a) 2(a) 3(b): 0. Query 2: 0(a): 1. Query 3: 0(a) 1(b): P@1 0, but R = 1: 0.
        assert_eq!(s.queries, 4);
        assert!(close(s.precision_at_1, 0.25));
        assert!(close(s.r_precision, 0.25));
        assert!(close(s.map_at_r, 0.25));
    }

    #[test]
    fn lone_classes_and_no_queries() {
        let s = scores(&[0.0, 1.0], &[3, 4]);
        assert_eq!(
            s,
            Retrieval {
                precision_at_1: 0.0,
                r_precision: 0.0,
                map_at_r: 0.0,
                queries: 0
            }
        );
        let perfect = scores(&[0.0, 0.1, 5.0, 5.1, 9.0], &[1, 1, 2, 2, 7]);
        assert_eq!(perfect.queries, 4);
        assert!(close(perfect.map_at_r, 1.0) && close(perfect.r_precision, 1.0));
    }
}
