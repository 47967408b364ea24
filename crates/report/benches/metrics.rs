//! `siamese eval`'s metrics on 10,000 points (the size of MNIST's test set), 2-D and 32-D.

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_report::metrics::Points;
use siamese_report::metrics::{MetricOptions, evaluate};

fn clusters(n: usize, dim: usize) -> (Vec<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let features = labels
        .iter()
        .flat_map(|&l| (0..dim).map(move |d| (l as usize * (d + 1) % 7) as f32))
        .map(|c| c + rng.random::<f32>() * 2.0)
        .collect();
    (features, labels)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate_10000");
    group.sample_size(10);
    for dim in [2, 32] {
        let (features, labels) = clusters(10_000, dim);
        let points = Points::new(dim, features, labels).unwrap();
        group.bench_function(format!("{dim}d"), |b| {
            b.iter(|| evaluate(&points, None, MetricOptions::default()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
