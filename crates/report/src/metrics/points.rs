//! `Points`: a labelled embedding as the metrics read it (row-major features, one label per
//! row), and the squared Euclidean distance every metric ranks by.

/// `labels.len()` points of `dim` features each, row-major in `features`.
#[derive(Clone, Debug, PartialEq)]
pub struct Points {
    pub dim: usize,
    pub features: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Points {
    /// Points from `features` (`labels.len() × dim`); `None` when the sizes disagree.
    pub fn new(dim: usize, features: Vec<f32>, labels: Vec<u8>) -> Option<Points> {
        (dim > 0 && features.len() == dim * labels.len()).then_some(Points {
            dim,
            features,
            labels,
        })
    }

    /// Points from `(features, label)` rows (what [`crate::read_features`] returns); `None`
    /// when there are none or their lengths differ.
    pub fn from_rows(rows: &[(Vec<f32>, u8)]) -> Option<Points> {
        let dim = rows.first()?.0.len();
        if rows.iter().any(|(f, _)| f.len() != dim) {
            return None;
        }
        let features = rows.iter().flat_map(|(f, _)| f.iter().copied()).collect();
        Points::new(dim, features, rows.iter().map(|(_, l)| *l).collect())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..][..self.dim]
    }

    /// The distinct labels, ascending.
    pub fn classes(&self) -> Vec<u8> {
        let mut seen = [false; 256];
        self.labels.iter().for_each(|&l| seen[l as usize] = true);
        (0..=255u8).filter(|&l| seen[l as usize]).collect()
    }

    /// The points whose label `keep` accepts, in order (open-set evaluation scores the
    /// held-out classes only).
    pub fn with_labels(&self, keep: impl Fn(u8) -> bool) -> Points {
        let kept: Vec<usize> = (0..self.len()).filter(|&i| keep(self.labels[i])).collect();
        Points {
            dim: self.dim,
            features: kept
                .iter()
                .flat_map(|&i| self.row(i).iter().copied())
                .collect(),
            labels: kept.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Squared Euclidean distance as f64 (see [`squared_distance_f32`]).
pub fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    f64::from(squared_distance_f32(a, b))
}

/// Squared Euclidean distance, summed in f32 over 8 interleaved lanes (vectorised: the
/// ranking a metric needs, at 8× the speed of an f64 loop on wide embeddings).
pub fn squared_distance_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = x[k] - y[k];
            lanes[k] += d * d;
        }
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lanes;
    ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) + tail
}
