//! Clustering quality: k-means (k-means++ seeding from a fixed seed, best inertia of several
//! starts) on the embedding, scored against the labels by NMI and AMI (arithmetic normalization,
//! scikit-learn's default).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::points::{Points, squared_distance};

/// k-means settings: `starts` seedings (scikit-learn's `n_init`), Lloyd iterations each.
#[derive(Clone, Copy, Debug)]
pub struct KMeansOptions {
    pub k: usize,
    pub starts: usize,
    pub max_iterations: usize,
    pub seed: u64,
}

/// The best (lowest-inertia) of the starts: one cluster id per point and the inertia (sum of
/// squared distances to the assigned centres).
#[derive(Clone, Debug, PartialEq)]
pub struct Clustering {
    pub assignment: Vec<usize>,
    pub inertia: f64,
}

/// k-means of `points` (k clamped to 1..=n; an empty set has no clusters).
pub fn kmeans(points: &Points, options: KMeansOptions) -> Clustering {
    let n = points.len();
    if n == 0 {
        return Clustering {
            assignment: Vec::new(),
            inertia: 0.0,
        };
    }
    let k = options.k.clamp(1, n);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut best: Option<Clustering> = None;
    for _ in 0..options.starts.max(1) {
        let centres = kmeans_plus_plus(points, k, &mut rng);
        let run = lloyd(points, centres, options.max_iterations);
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    best.expect("at least one start")
}

/// k-means++ seeding: the first centre uniformly, each next one with probability
/// proportional to the squared distance to the nearest centre chosen so far.
fn kmeans_plus_plus(points: &Points, k: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (n, dim) = (points.len(), points.dim);
    let mut centres = Vec::with_capacity(k * dim);
    let first = rng.random_range(0..n);
    centres.extend_from_slice(points.row(first));
    let mut nearest: Vec<f64> = (0..n)
        .map(|i| distance_to(points.row(i), &centres[..dim]))
        .collect();
    for c in 1..k {
        let total: f64 = nearest.iter().sum();
        let chosen = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            nearest
                .iter()
                .position(|&d| {
                    target -= d;
                    target < 0.0
                })
                .unwrap_or(n - 1)
        } else {
            // Every point sits on a centre already: any point will do.
            rng.random_range(0..n)
        };
        centres.extend_from_slice(points.row(chosen));
        let centre = &centres[c * dim..];
        for (i, d) in nearest.iter_mut().enumerate() {
            *d = d.min(distance_to(points.row(i), centre));
        }
    }
    centres
}

fn distance_to(point: &[f32], centre: &[f32]) -> f64 {
    squared_distance(point, centre)
}

/// Lloyd's iterations from `centres` until no assignment changes (or `max_iterations`). An
/// emptied cluster takes the point farthest from its centre, as scikit-learn relocates.
fn lloyd(points: &Points, mut centres: Vec<f32>, max_iterations: usize) -> Clustering {
    let (n, dim) = (points.len(), points.dim);
    let k = centres.len() / dim;
    let mut assignment = vec![usize::MAX; n];
    let mut distances = vec![0.0f64; n];
    for _ in 0..max_iterations.max(1) {
        let changed = assign(points, &centres, &mut assignment, &mut distances);
        if !changed {
            break;
        }
        update_centres(points, &assignment, &distances, &mut centres, k);
    }
    assign(points, &centres, &mut assignment, &mut distances);
    Clustering {
        inertia: distances.iter().sum(),
        assignment,
    }
}

/// Assigns each point to its nearest centre (ties to the lower centre); whether any changed.
fn assign(
    points: &Points,
    centres: &[f32],
    assignment: &mut [usize],
    distances: &mut [f64],
) -> bool {
    let dim = points.dim;
    let mut changed = false;
    for i in 0..points.len() {
        let row = points.row(i);
        let (best, d) = centres
            .chunks_exact(dim)
            .map(|c| distance_to(row, c))
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |acc, (c, d)| if d < acc.1 { (c, d) } else { acc },
            );
        changed |= assignment[i] != best;
        assignment[i] = best;
        distances[i] = d;
    }
    changed
}

fn update_centres(
    points: &Points,
    assignment: &[usize],
    distances: &[f64],
    centres: &mut [f32],
    k: usize,
) {
    let dim = points.dim;
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (i, &c) in assignment.iter().enumerate() {
        counts[c] += 1;
        for (s, &v) in sums[c * dim..][..dim].iter_mut().zip(points.row(i)) {
            *s += f64::from(v);
        }
    }
    let mut farthest: Vec<usize> = (0..points.len()).collect();
    farthest.sort_by(|&a, &b| distances[b].total_cmp(&distances[a]).then(a.cmp(&b)));
    let mut donors = farthest.into_iter();
    for c in 0..k {
        let centre = &mut centres[c * dim..][..dim];
        if counts[c] > 0 {
            for (x, s) in centre.iter_mut().zip(&sums[c * dim..][..dim]) {
                *x = (s / counts[c] as f64) as f32;
            }
        } else if let Some(p) = donors.next() {
            centre.copy_from_slice(points.row(p));
        }
    }
}

/// Normalized mutual information of two labelings (arithmetic mean of the entropies).
/// Both with a single class (or empty): 1, a perfect match; no shared information: 0.
pub fn nmi(truth: &[usize], predicted: &[usize]) -> f64 {
    let table = Contingency::new(truth, predicted);
    if table.is_trivial() {
        return 1.0;
    }
    let mi = table.mutual_information();
    if mi == 0.0 {
        return 0.0;
    }
    mi / table.mean_entropy()
}

/// Adjusted mutual information (arithmetic normalization): (MI − E[MI]) / (mean(H) − E[MI]),
/// E[MI] under the hypergeometric model of random labelings with these class sizes.
pub fn ami(truth: &[usize], predicted: &[usize]) -> f64 {
    let table = Contingency::new(truth, predicted);
    if table.is_trivial() {
        return 1.0;
    }
    let mi = table.mutual_information();
    let emi = table.expected_mutual_information();
    let denominator = table.mean_entropy() - emi;
    // As scikit-learn: keep the sign, never divide by (almost) zero.
    let denominator = if denominator < 0.0 {
        denominator.min(-f64::EPSILON)
    } else {
        denominator.max(f64::EPSILON)
    };
    (mi - emi) / denominator
}

/// Counts of (true class, predicted cluster) over n points, with the marginals.
struct Contingency {
    n: usize,
    rows: Vec<usize>,
    cols: Vec<usize>,
    cells: Vec<Vec<usize>>,
}

impl Contingency {
    fn new(truth: &[usize], predicted: &[usize]) -> Contingency {
        let dense = |labels: &[usize]| {
            let mut ids: Vec<usize> = labels.to_vec();
            ids.sort_unstable();
            ids.dedup();
            let index: Vec<usize> = labels
                .iter()
                .map(|l| ids.binary_search(l).unwrap_or(0))
                .collect();
            (ids.len(), index)
        };
        let (r, ti) = dense(truth);
        let (c, pi) = dense(predicted);
        let mut cells = vec![vec![0usize; c]; r];
        for (&a, &b) in ti.iter().zip(&pi) {
            cells[a][b] += 1;
        }
        let rows = cells.iter().map(|row| row.iter().sum()).collect();
        let cols = (0..c)
            .map(|j| cells.iter().map(|row| row[j]).sum())
            .collect();
        Contingency {
            n: truth.len().min(predicted.len()),
            rows,
            cols,
            cells,
        }
    }

    /// Both labelings one class, or none: scikit-learn's perfect-match special case.
    fn is_trivial(&self) -> bool {
        self.rows.len() == self.cols.len() && self.rows.len() <= 1
    }

    fn mutual_information(&self) -> f64 {
        let n = self.n as f64;
        let mut mi = 0.0;
        for (i, row) in self.cells.iter().enumerate() {
            for (j, &nij) in row.iter().enumerate() {
                if nij > 0 {
                    let nij = nij as f64;
                    mi += nij / n * (n * nij / (self.rows[i] as f64 * self.cols[j] as f64)).ln();
                }
            }
        }
        mi.max(0.0)
    }

    fn mean_entropy(&self) -> f64 {
        (entropy(&self.rows, self.n) + entropy(&self.cols, self.n)) / 2.0
    }

    /// E[MI] (Vinh, Epps, Bailey 2010), as scikit-learn's `expected_mutual_information`.
    fn expected_mutual_information(&self) -> f64 {
        let n = self.n;
        let ln_fact = ln_factorials(n);
        let nf = n as f64;
        let mut emi = 0.0;
        for &a in &self.rows {
            for &b in &self.cols {
                let lo = (a + b).saturating_sub(n).max(1);
                for nij in lo..=a.min(b) {
                    let x = nij as f64;
                    let term = x / nf * (nf * x / (a as f64 * b as f64)).ln();
                    let ln_p = ln_fact[a] + ln_fact[b] + ln_fact[n - a] + ln_fact[n - b]
                        - ln_fact[n]
                        - ln_fact[nij]
                        - ln_fact[a - nij]
                        - ln_fact[b - nij]
                        - ln_fact[n - a - b + nij];
                    emi += term * ln_p.exp();
                }
            }
        }
        emi
    }
}

fn entropy(counts: &[usize], n: usize) -> f64 {
    let n = n as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// ln(k!) for k = 0..=n, summed (exact enough: each step adds one ln).
fn ln_factorials(n: usize) -> Vec<f64> {
    let mut table = Vec::with_capacity(n + 1);
    let mut acc = 0.0f64;
    table.push(0.0);
    for k in 1..=n {
        acc += (k as f64).ln();
        table.push(acc);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_labelings_score_one_and_renaming_does_not_matter() {
        let a = [0, 0, 1, 1, 2, 2];
        let b = [5, 5, 3, 3, 9, 9];
        assert!((nmi(&a, &b) - 1.0).abs() < 1e-12);
        assert!((ami(&a, &b) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn single_class_cases() {
        assert_eq!(nmi(&[1, 1, 1], &[0, 0, 0]), 1.0);
        assert_eq!(ami(&[1, 1, 1], &[0, 0, 0]), 1.0);
        assert_eq!(nmi(&[], &[]), 1.0);
        // One cluster against two classes: no information.
        assert_eq!(nmi(&[0, 0, 1, 1], &[0, 0, 0, 0]), 0.0);
    }

    /// By hand: truth [0 0 1 1], predicted [0 1 0 1]: independent, MI 0 -> NMI 0.
    #[test]
    fn independent_labelings_score_zero() {
        assert_eq!(nmi(&[0, 0, 1, 1], &[0, 1, 0, 1]), 0.0);
        assert!(ami(&[0, 0, 1, 1], &[0, 1, 0, 1]) < 0.0);
    }

    /// By hand: truth [0 0 0 1], predicted [0 0 1 1]. MI = Σ p ln(p/(pa pb)):
    /// cells (0,0)=2, (0,1)=1, (1,1)=1 over n=4; rows 3,1; cols 2,2.
    #[test]
    fn nmi_by_hand() {
        let mi = 0.5 * (0.5f64 / (0.75 * 0.5)).ln()
            + 0.25 * (0.25f64 / (0.75 * 0.5)).ln()
            + 0.25 * (0.25f64 / (0.25 * 0.5)).ln();
        let h_true = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        let h_pred = 2f64.ln();
        let expect = mi / ((h_true + h_pred) / 2.0);
        assert!((nmi(&[0, 0, 0, 1], &[0, 0, 1, 1]) - expect).abs() < 1e-12);
    }

    #[test]
    fn kmeans_finds_separated_clusters_and_is_seeded() {
        let features: Vec<f32> = [0.0, 0.1, 0.2, 10.0, 10.1, 10.2, 20.0, 20.1, 20.2]
            .iter()
            .flat_map(|&x| [x, -x])
            .collect();
        let labels = [0u8; 9];
        let p = Points::new(2, features.to_vec(), labels.to_vec()).unwrap();
        let options = KMeansOptions {
            k: 3,
            starts: 10,
            max_iterations: 300,
            seed: 0,
        };
        let c = kmeans(&p, options);
        let truth = [0, 0, 0, 1, 1, 1, 2, 2, 2];
        assert!((nmi(&truth, &c.assignment) - 1.0).abs() < 1e-12, "{c:?}");
        assert!(
            (c.inertia - 9.0 * 0.02 * 2.0 / 3.0 * 2.0 / 2.0).abs() < 1e-4,
            "{c:?}"
        );
        assert_eq!(kmeans(&p, options), c);
    }

    #[test]
    fn kmeans_copes_with_identical_points_and_large_k() {
        let features = [1.0f32; 6];
        let labels = [0u8; 3];
        let p = Points::new(2, features.to_vec(), labels.to_vec()).unwrap();
        let c = kmeans(
            &p,
            KMeansOptions {
                k: 5,
                starts: 3,
                max_iterations: 10,
                seed: 1,
            },
        );
        assert_eq!(c.assignment.len(), 3);
        assert_eq!(c.inertia, 0.0);
    }
}
