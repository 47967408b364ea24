//! A t-SNE picture of a wider embedding (Barnes-Hut, the bhtsne crate), seeded and run on
//! one thread so the same points and seed give the same picture, bit for bit, anywhere.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::points::{Points, squared_distance_f32};
use super::retrieval::{index_of, nearest_others};

/// t-SNE settings (van der Maaten's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TsneOptions {
    pub perplexity: f32,
    pub epochs: usize,
    pub theta: f32,
    pub seed: u64,
}

impl Default for TsneOptions {
    fn default() -> Self {
        TsneOptions {
            perplexity: 30.0,
            epochs: 1000,
            theta: 0.5,
            seed: 0,
        }
    }
}

/// The points laid out in 2-D by t-SNE. Everything bhtsne would leave to chance is fixed:
/// the initial layout is drawn from ChaCha8 with `seed`, the nearest neighbours are found
/// here (exactly, ties to the lower index: bhtsne's vantage-point tree picks its vantage
/// points from an unseeded generator, which changes the neighbours of tied points), and the
/// fit runs in a one-thread pool (its parallel sums change with the thread count).
/// Perplexity is capped below a third of the points, as bhtsne requires.
pub fn tsne_2d(points: &Points, options: TsneOptions) -> Result<Vec<[f32; 2]>, String> {
    let n = points.len();
    if n < 4 {
        return Err(format!("t-SNE needs at least 4 points, got {n}"));
    }
    let perplexity = options.perplexity.min((n as f32 - 1.0) / 3.0 - 0.01);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let init: Vec<f32> = (0..2 * n)
        .map(|_| (rng.random::<f32>() - 0.5) * 1e-2)
        .collect();
    let rows: Vec<&[f32]> = (0..n).map(|i| points.row(i)).collect();
    let neighbors = neighbour_table(points, ((3.0 * perplexity) as usize).clamp(1, n - 1));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| format!("cannot start the t-SNE thread: {e}"))?;
    let embedding = pool.install(|| {
        bhtsne::tSNE::<f32, &[f32], 2>::new(&rows)
            .perplexity(perplexity)
            .epochs(options.epochs)
            .initial_embedding(init)
            .barnes_hut_with_neighbors(options.theta, &neighbors)
            .embedding()
    });
    Ok(embedding.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
}

/// Each point's `k` nearest others by Euclidean distance, nearest first, ties to the lower
/// index.
fn neighbour_table(points: &Points, k: usize) -> Vec<Vec<bhtsne::Neighbor<f32>>> {
    let mut ranked = Vec::new();
    (0..points.len())
        .map(|q| {
            nearest_others(points, q, k, &mut ranked)
                .iter()
                .map(|&key| {
                    let index = index_of(key);
                    bhtsne::Neighbor {
                        index,
                        distance: squared_distance_f32(points.row(q), points.row(index)).sqrt(),
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> Points {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let labels: Vec<u8> = (0..60).map(|i| (i % 3) as u8).collect();
        let features = labels
            .iter()
            .flat_map(|&l| (0..4).map(move |d| f32::from(l) * 10.0 + d as f32))
            .map(|v| v + rng.random::<f32>())
            .collect();
        Points::new(4, features, labels).unwrap()
    }

    #[test]
    fn same_seed_same_bits_and_clusters_stay_apart() {
        let options = TsneOptions {
            epochs: 300,
            ..TsneOptions::default()
        };
        let a = tsne_2d(&blobs(), options).unwrap();
        let b = tsne_2d(&blobs(), options).unwrap();
        let bits = |v: &[[f32; 2]]| {
            v.iter()
                .flat_map(|p| p.map(f32::to_bits))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&a), bits(&b));
        // Each point's nearest other point in the picture shares its class.
        let p = blobs();
        for i in 0..a.len() {
            let nearest = (0..a.len())
                .filter(|&j| j != i)
                .min_by(|&x, &y| {
                    let d = |j: usize| (a[i][0] - a[j][0]).powi(2) + (a[i][1] - a[j][1]).powi(2);
                    d(x).total_cmp(&d(y))
                })
                .unwrap();
            assert_eq!(p.labels[nearest], p.labels[i], "point {i}");
        }
        assert!(tsne_2d(&Points::new(1, vec![0.0; 3], vec![0; 3]).unwrap(), options).is_err());
        // Duplicated points tie: still the same bits.
        let mut dup = blobs();
        let first = dup.row(0).to_vec();
        dup.features[4..8].copy_from_slice(&first);
        let a = tsne_2d(&dup, options).unwrap();
        let b = tsne_2d(&dup, options).unwrap();
        assert_eq!(bits(&a), bits(&b));
    }
}
