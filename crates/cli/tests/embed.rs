//! `siamese embed` end to end: Caffe's deploy net, weights saved by siamese, the committed
//! MNIST sample; CSV layout, labels, batching and errors.

mod support;

use std::path::Path;

use siamese_layers::embed::embed_images;
use siamese_testkit::repo;
use support::{arg, deploy_model, one_line_error, random_weights, siamese, success};

#[test]
fn writes_features_with_labels() {
    let Some(model) = deploy_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.caffemodel");
    let mut net = random_weights(&model, &weights);
    let sample = repo().join("data/mnist-sample");
    let images = sample.join("t10k-images-idx3-ubyte.gz");
    let labels = sample.join("t10k-labels-idx1-ubyte.gz");
    let out = dir.path().join("feats.csv");
    let s = |p: &Path| p.display().to_string();
    let run = siamese(&[
        "embed",
        "--model",
        &s(&model),
        "--weights",
        &s(&weights),
        "--images",
        &s(&images),
        "--labels",
        &s(&labels),
        "--limit",
        "300",
        "--out",
        &s(&out),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("embedded 300 images"));

    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "index,label,f0,f1");
    assert_eq!(rows.len(), 301, "300 images in batches of 128, 128 and 44");
    let digits = siamese_data::idx::read_labels(&labels).unwrap().labels;
    let want = embed_images(
        &mut net,
        &siamese_data::idx::read_images(&images).unwrap(),
        300,
        1.0 / 256.0,
        7,
    )
    .unwrap();
    for (i, row) in rows[1..].iter().enumerate() {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[0], i.to_string());
        assert_eq!(cells[1], digits[i].to_string());
        for (cell, want) in cells[2..].iter().zip(want.row(i)) {
            let got: f32 = cell.parse().unwrap();
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "row {i}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn label_column_is_empty_without_labels_and_errors_leave_no_file() {
    let Some(model) = deploy_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.caffemodel");
    random_weights(&model, &weights);
    let images = repo().join("data/mnist-sample/t10k-images-idx3-ubyte.gz");
    let out = dir.path().join("feats.csv");
    let s = |p: &Path| p.display().to_string();
    let base = [
        "embed",
        "--model",
        &s(&model),
        "--images",
        &s(&images),
        "--limit",
        "3",
        "--out",
        &s(&out),
    ];
    let run = siamese(&[&base[..], &["--weights", &s(&weights)]].concat());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().nth(1).unwrap().split(',').nth(1), Some(""));
    assert_eq!(text.lines().count(), 4);
    std::fs::remove_file(&out).unwrap();

    let missing = dir.path().join("missing.caffemodel");
    let run = siamese(&[&base[..], &["--weights", &s(&missing)]].concat());
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("missing.caffemodel"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists());
}

#[test]
fn the_features_are_the_same_bits_on_one_and_two_threads() {
    let Some(model) = deploy_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.caffemodel");
    random_weights(&model, &weights);
    let images = repo().join("data/mnist-sample/t10k-images-idx3-ubyte.gz");
    let (model, weights, images) = (arg(&model), arg(&weights), arg(&images));
    let embed = |threads: &str| {
        let out = dir.path().join(format!("feats-{threads}.csv"));
        let run = siamese(&[
            "embed",
            "--model",
            &model,
            "--weights",
            &weights,
            "--images",
            &images,
            "--limit",
            "300",
            "--threads",
            threads,
            "--out",
            &arg(&out),
        ]);
        (run, out)
    };
    let (one, one_out) = embed("1");
    let (two, two_out) = embed("2");
    success(&one);
    success(&two);
    assert_eq!(
        std::fs::read(&one_out).unwrap(),
        std::fs::read(&two_out).unwrap()
    );
    let (zero, zero_out) = embed("0");
    assert!(one_line_error(&zero).contains("--threads 0: expected at least 1"));
    assert!(!zero_out.exists());
}
