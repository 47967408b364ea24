//! `siamese embed --images` on PNG files and `siamese compare`, end to end: digits of the
//! sample saved as PNGs embed exactly as the IDX digits do; bad files are named in one line.

mod support;

use std::path::Path;

use siamese_report::metrics::verification::fold_accuracy;
use siamese_report::metrics::{Points, scored_pairs};
use siamese_testkit::{sample_dir, write_digit_pngs};
use support::{arg, deploy_model, one_line_error, random_weights, siamese, success};

/// Digits embedded from PNGs and from the IDX file.
const DIGITS: usize = 300;

fn embed(model: &Path, weights: &Path, images: &Path, out: &Path, extra: &[&str]) -> String {
    let args = [
        "embed",
        "--model",
        &arg(model),
        "--weights",
        &arg(weights),
        "--images",
        &arg(images),
        "--out",
        &arg(out),
    ];
    success(&siamese(&[&args[..], extra].concat()));
    std::fs::read_to_string(out).unwrap()
}

/// The feature cells of each row after the first `skip` columns, as written.
fn feature_cells(csv: &str, skip: usize) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').skip(skip).map(str::to_string).collect())
        .collect()
}

#[test]
fn png_digits_embed_bit_for_bit_as_the_idx_digits() {
    let Some(model) = deploy_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.caffemodel");
    random_weights(&model, &weights);
    let pngs = dir.path().join("pngs");
    std::fs::create_dir(&pngs).unwrap();
    let files = write_digit_pngs(&pngs, DIGITS);
    std::fs::write(pngs.join("README.txt"), "not an image").unwrap();

    let idx = sample_dir().join("t10k-images-idx3-ubyte.gz");
    let limit = DIGITS.to_string();
    let digits = embed(
        &model,
        &weights,
        &idx,
        &dir.path().join("d.csv"),
        &["--limit", &limit],
    );
    let from_pngs = embed(&model, &weights, &pngs, &dir.path().join("f.csv"), &[]);
    assert!(from_pngs.starts_with("file,f0,f1\n"), "{from_pngs}");
    let names: Vec<&str> = from_pngs
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let want: Vec<String> = files.iter().map(|f| arg(f)).collect();
    assert_eq!(names, want);
    assert_eq!(feature_cells(&from_pngs, 1), feature_cells(&digits, 2));

    // A list file, in its own order, relative to its folder.
    let list = pngs.join("list.txt");
    std::fs::write(&list, "# two digits\ndigit-00002.png\n\ndigit-00000.png\n").unwrap();
    let listed = embed(&model, &weights, &list, &dir.path().join("l.csv"), &[]);
    // A batch of 2, not of 256: the same values up to the GEMM's summation order.
    let numbers = |csv: &str| -> Vec<Vec<f32>> {
        let cells = feature_cells(csv, 1);
        cells
            .iter()
            .map(|r| r.iter().map(|c| c.parse().unwrap()).collect())
            .collect()
    };
    let (rows, all) = (numbers(&listed), numbers(&from_pngs));
    for (got, want) in rows.iter().zip([&all[2], &all[0]]) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }
    assert_eq!(rows.len(), 2);
    assert!(listed.contains(&format!("{},", arg(&pngs.join("digit-00002.png")))));
}

#[test]
fn unreadable_images_are_one_line_errors_naming_the_file() {
    let Some(model) = deploy_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.caffemodel");
    random_weights(&model, &weights);
    let pngs = dir.path().join("pngs");
    std::fs::create_dir(&pngs).unwrap();
    write_digit_pngs(&pngs, 2);
    std::fs::write(pngs.join("digit-00001.png"), "a text file").unwrap();
    let out = dir.path().join("f.csv");
    let base = [
        "embed",
        "--model",
        &arg(&model),
        "--weights",
        &arg(&weights),
    ];
    let run = |images: &Path, extra: &[&str]| {
        let (images, out) = (arg(images), arg(&out));
        let args = [&base[..], &["--images", &images, "--out", &out], extra].concat();
        one_line_error(&siamese(&args))
    };
    let err = run(&pngs, &[]);
    assert!(
        err.contains("digit-00001.png: starts with bytes [61 20 74 65], not a PNG or JPEG image"),
        "{err}"
    );
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "pngs/digit-00000.png\npngs/missing.png\n").unwrap();
    let err = run(&list, &[]);
    assert!(
        err.contains("missing.png: No such file or directory"),
        "{err}"
    );
    let labels = sample_dir().join("t10k-labels-idx1-ubyte.gz");
    let err = run(&pngs, &["--labels", &arg(&labels)]);
    assert!(err.contains("labels go with IDX images"), "{err}");
    let err = run(&dir.path().join("none"), &[]);
    assert!(err.contains("none: No such file or directory"), "{err}");
    assert!(!out.exists());
}

fn compare(
    model: &Path,
    weights: &Path,
    a: &Path,
    b: &Path,
    extra: &[&str],
) -> std::process::Output {
    let args = [
        "compare",
        &arg(a),
        &arg(b),
        "--model",
        &arg(model),
        "--weights",
        &arg(weights),
    ];
    siamese(&[&args[..], extra].concat())
}

#[test]
fn compare_prints_the_embedding_distance_and_the_decision() {
    let Some(model) = deploy_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.caffemodel");
    random_weights(&model, &weights);
    let files = write_digit_pngs(dir.path(), 2);
    let feats = dir.path().join("f.csv");
    let csv = embed(&model, &weights, dir.path(), &feats, &[]);
    let row = |i: usize| -> Vec<f64> {
        feature_cells(&csv, 1)[i]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect()
    };
    let (a, b) = (row(0), row(1));
    let want = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();

    let same = success(&compare(
        &model,
        &weights,
        &files[0],
        &files[0],
        &["--threshold", "0"],
    ));
    assert_eq!(
        same,
        "distance 0.000000\nthreshold 0.000000 (--threshold)\nsame class: yes\n"
    );
    let out = success(&compare(&model, &weights, &files[0], &files[1], &[]));
    let distance: f64 = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("distance ")
        .unwrap()
        .parse()
        .unwrap();
    assert!((distance - want).abs() < 1e-6, "{distance} vs {want}");
    assert!(
        out.ends_with(
            "same class: unknown (give --threshold T, or --features feats.csv to choose one)\n"
        ),
        "{out}"
    );
    let below = format!("{}", want * 1.01);
    let above = format!("{}", want * 0.99);
    let yes = success(&compare(
        &model,
        &weights,
        &files[0],
        &files[1],
        &["--threshold", &below],
    ));
    let no = success(&compare(
        &model,
        &weights,
        &files[0],
        &files[1],
        &["--threshold", &above],
    ));
    assert!(
        yes.ends_with("same class: yes\n") && no.ends_with("same class: no\n"),
        "{yes}{no}"
    );
}

#[test]
fn compare_takes_the_threshold_eval_chooses_on_a_features_file() {
    let Some(model) = deploy_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.caffemodel");
    random_weights(&model, &weights);
    let files = write_digit_pngs(dir.path(), 2);
    let sample = sample_dir();
    let feats = dir.path().join("held_out.csv");
    let labels = arg(&sample.join("t10k-labels-idx1-ubyte.gz"));
    let idx = sample.join("t10k-images-idx3-ubyte.gz");
    embed(
        &model,
        &weights,
        &idx,
        &feats,
        &["--labels", &labels, "--limit", "200"],
    );
    let points = Points::from_rows(&siamese_report::read_features(&feats).unwrap()).unwrap();
    let threshold = fold_accuracy(&scored_pairs(&points), 10).threshold;

    let out = success(&compare(
        &model,
        &weights,
        &files[0],
        &files[1],
        &["--features", &arg(&feats)],
    ));
    let lines: Vec<&str> = out.lines().collect();
    let distance: f64 = lines[0].strip_prefix("distance ").unwrap().parse().unwrap();
    let want = format!(
        "threshold {threshold:.6} (chosen on the 400 balanced pairs of {};",
        arg(&feats)
    );
    assert!(lines[1].starts_with(&want), "{out}");
    let decision = if distance <= threshold { "yes" } else { "no" };
    assert_eq!(lines[2], format!("same class: {decision}"));

    let err = one_line_error(&compare(
        &model,
        &weights,
        &files[0],
        &dir.path().join("x.png"),
        &[],
    ));
    assert!(err.contains("x.png: No such file or directory"), "{err}");
    let wide = dir.path().join("wide.csv");
    std::fs::write(&wide, "index,label,f0,f1,f2\n0,1,0,0,0\n1,2,1,1,1\n").unwrap();
    let err = one_line_error(&compare(
        &model,
        &weights,
        &files[0],
        &files[1],
        &["--features", &arg(&wide)],
    ));
    assert!(
        err.contains("wide.csv: 3 feature columns, expected 2"),
        "{err}"
    );
}
