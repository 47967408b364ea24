//! A deterministic 2-D view of a wider embedding: its first two principal components (PCA of
//! the centred features), each axis signed so its largest loading is positive.

use nalgebra::{DMatrix, SymmetricEigen};

use super::points::Points;

/// The points projected on their first two principal components (row-major `[x, y]` per
/// point). 2-D input comes back as it is; 1-D input gets y = 0.
pub fn pca_2d(points: &Points) -> Vec<[f32; 2]> {
    let (n, dim) = (points.len(), points.dim);
    if dim <= 2 || n == 0 {
        return (0..n)
            .map(|i| {
                let row = points.row(i);
                [row[0], row.get(1).copied().unwrap_or(0.0)]
            })
            .collect();
    }
    let mut mean = vec![0.0f64; dim];
    for i in 0..n {
        mean.iter_mut()
            .zip(points.row(i))
            .for_each(|(m, &v)| *m += f64::from(v));
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = DMatrix::<f64>::zeros(dim, dim);
    for i in 0..n {
        let row = points.row(i);
        for a in 0..dim {
            let xa = f64::from(row[a]) - mean[a];
            for b in a..dim {
                cov[(a, b)] += xa * (f64::from(row[b]) - mean[b]);
            }
        }
    }
    for a in 0..dim {
        for b in 0..a {
            cov[(a, b)] = cov[(b, a)];
        }
    }
    let eigen = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| {
        eigen.eigenvalues[b]
            .total_cmp(&eigen.eigenvalues[a])
            .then(a.cmp(&b))
    });
    let axis = |k: usize| -> Vec<f64> {
        let column: Vec<f64> = eigen
            .eigenvectors
            .column(order[k])
            .iter()
            .copied()
            .collect();
        let largest = column
            .iter()
            .copied()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        let sign = if largest < 0.0 { -1.0 } else { 1.0 };
        column.into_iter().map(|v| v * sign).collect()
    };
    let (ax, ay) = (axis(0), axis(1));
    (0..n)
        .map(|i| {
            let row = points.row(i);
            let dot = |axis: &[f64]| {
                row.iter()
                    .zip(&mean)
                    .zip(axis)
                    .map(|((&v, m), a)| (f64::from(v) - m) * a)
                    .sum::<f64>() as f32
            };
            [dot(&ax), dot(&ay)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_in_three_dimensions_lands_on_the_x_axis() {
        // Points along (1, 2, 2)/3 at t = -1, 0, 1, 2: PCA's first axis is that direction.
        let mut features = Vec::new();
        for t in [-1.0f32, 0.0, 1.0, 2.0] {
            features.extend([t, 2.0 * t, 2.0 * t]);
        }
        let labels = [0u8; 4];
        let p = pca_2d(&Points::new(3, features.to_vec(), labels.to_vec()).unwrap());
        for (got, t) in p.iter().zip([-1.5f32, -0.5, 0.5, 1.5]) {
            assert!((got[0] - 3.0 * t).abs() < 1e-5, "{p:?}");
            assert!(got[1].abs() < 1e-5, "{p:?}");
        }
    }

    #[test]
    fn two_dimensions_pass_through() {
        let features = [1.0f32, 2.0, 3.0, 4.0];
        let labels = [0u8; 2];
        assert_eq!(
            pca_2d(&Points::new(2, features.to_vec(), labels.to_vec()).unwrap()),
            [[1.0, 2.0], [3.0, 4.0]]
        );
    }
}
