//! The siamese net's loss at iteration 0, before any update, against its analytic form.
//!
//! With Caffe's xavier fillers the initial weights do not depend on the margin, so neither do
//! the two towers' features; with every distance d below the margin m, Caffe's contrastive
//! loss over a batch of N pairs, S of them similar, is the quadratic
//! L(m) = (1/2N)·[Σ_sim d² + Σ_dis (m − d)²] = ((N−S)/2N)·m² − (Σ_dis d / N)·m + Σ d²/2N.
//! Its second difference over margins 2, 4, 6 is 8·(N−S)/2N, fixed by the batch's labels
//! alone: this checks the data labels, the margin's use and margin-independent seeding.

use std::path::Path;

use siamese_data::pairs::PairOptions;
use siamese_layers::Net;
use siamese_net::NetSpec;
use siamese_proto::Phase;
use siamese_testkit::repo;

const SEED: u64 = 1701;

/// The project's train/test net reading `db` for both phases, with contrastive margin `m`.
fn siamese_net(db: &Path, margin: f32) -> Net {
    let path = repo().join("experiments/siamese/mnist_siamese_train_test.prototxt");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "data/mnist/siamese_train_leveldb",
            &db.display().to_string(),
        )
        .replace("data/mnist/siamese_test_leveldb", &db.display().to_string())
        .replace("margin: 1 ", &format!("margin: {margin} "));
    assert!(text.contains(&format!("margin: {margin} ")));
    let param = siamese_net::parse::parse_net_text(&text, "siamese").unwrap();
    let spec = NetSpec::build(&param, Phase::Train, None).unwrap();
    Net::new(&spec, SEED).unwrap()
}

/// (loss, similar pairs in the batch, largest feature distance) of the first batch.
fn first_batch(db: &Path, margin: f32) -> (f64, usize, f32) {
    let mut net = siamese_net(db, margin);
    let loss = f64::from(net.forward().unwrap());
    let sim = net
        .blob("sim")
        .unwrap()
        .data
        .iter()
        .filter(|&&s| s == 1.0)
        .count();
    let (a, b) = (
        &net.blob("feat").unwrap().data,
        &net.blob("feat_p").unwrap().data,
    );
    let max_d = a
        .chunks(2)
        .zip(b.chunks(2))
        .map(|(x, y)| ((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2)).sqrt())
        .fold(0.0, f32::max);
    (loss, sim, max_d)
}

#[test]
fn initial_loss_is_the_contrastive_quadratic_in_the_margin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pairs");
    let sample = repo().join("data/mnist-sample");
    // Caffe's convert_mnist_siamese_data draws: about 10% similar pairs.
    siamese_data::convert::create_siamese_db(
        &sample.join("t10k-images-idx3-ubyte.gz"),
        &sample.join("t10k-labels-idx1-ubyte.gz"),
        &db,
        &PairOptions::default(),
        false,
    )
    .unwrap();
    let runs: Vec<_> = [1.0, 2.0, 4.0, 6.0].map(|m| first_batch(&db, m)).into();
    let (loss_1, sim, max_d) = runs[0];
    for run in &runs {
        assert_eq!(
            (run.1, run.2),
            (sim, max_d),
            "features depend on the margin"
        );
    }
    assert!(max_d < 2.0, "xavier features far apart: {max_d}");
    let n = 64.0;
    let second_difference = runs[1].0 - 2.0 * runs[2].0 + runs[3].0;
    let expected = 8.0 * (n - sim as f64) / (2.0 * n);
    assert!(
        (second_difference - expected).abs() < 1e-4 * expected,
        "second difference {second_difference}, expected {expected} ({sim} similar of 64)"
    );
    // At Caffe's margin 1: within the bounds the largest distance allows around the
    // zero-feature value (N−S)/2N.
    let (dis, d) = ((n - sim as f64) / (2.0 * n), f64::from(max_d));
    let zero_features = dis;
    let low = dis * (1.0 - d).max(0.0).powi(2);
    let high = dis + sim as f64 * d * d / (2.0 * n);
    assert!(
        low <= loss_1 && loss_1 <= high,
        "{loss_1} outside [{low}, {high}]"
    );
    println!(
        "iteration-0 loss at margin 1: {loss_1:.6} ({sim} similar of 64, largest distance \
         {max_d:.4}, zero-feature value {zero_features:.6})"
    );
}
