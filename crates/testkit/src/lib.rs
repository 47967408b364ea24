//! siamese-testkit: what siamese's tests share instead of copying it (a dev-dependency only):
//! the repository and Caffe's files, fixtures (IDX slices, digit PNGs, Datums), dead processes,
//! and GPU parity support (`test_device!`, tolerances).

mod device;

pub use device::{assert_close, gpu_or_skip};

use std::fs;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_data::idx::{read_images, read_labels};
use siamese_proto::Datum;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// The embedded 10,000-digit sample, `data/mnist-sample`.
pub fn sample_dir() -> PathBuf {
    repo().join("data/mnist-sample")
}

/// One of Caffe's own example files from `../shared/caffe-reference` (e.g.
/// `v2/mnist_siamese.prototxt`), or `None` where that folder is not beside the repository:
/// tests that need it print why they skip.
pub fn caffe_reference(name: &str) -> Option<PathBuf> {
    let path = repo().join("../shared/caffe-reference").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: Caffe's {name} is not at {}", path.display());
        None
    }
}

/// Writes the first `n` images and labels of the sample's `from` set (`train`, `t10k`) into
/// `dir` as plain IDX files named `<to>-images-idx3-ubyte` and `<to>-labels-idx1-ubyte`.
pub fn write_idx_slice(from: &str, to: &str, dir: &Path, n: usize) {
    let sample = sample_dir();
    let images = read_images(&sample.join(format!("{from}-images-idx3-ubyte.gz"))).unwrap();
    let labels = read_labels(&sample.join(format!("{from}-labels-idx1-ubyte.gz"))).unwrap();
    let mut bytes = Vec::new();
    for v in [2051, n as u32, images.rows as u32, images.cols as u32] {
        bytes.extend(v.to_be_bytes());
    }
    bytes.extend(&images.pixels[..n * images.rows * images.cols]);
    fs::write(dir.join(format!("{to}-images-idx3-ubyte")), bytes).unwrap();
    let mut bytes = Vec::new();
    for v in [2049, n as u32] {
        bytes.extend(v.to_be_bytes());
    }
    bytes.extend(&labels.labels[..n]);
    fs::write(dir.join(format!("{to}-labels-idx1-ubyte")), bytes).unwrap();
}

/// `n` values drawn uniformly from `[-bound, bound)` with ChaCha8 seeded by `seed`: random
/// weights for nets whose trained values do not matter to a test.
pub fn seeded_uniform(n: usize, seed: u64, bound: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

/// Writes the first `n` digits of the sample's test set into `dir` as 28×28 grey PNGs named
/// `digit-00000.png`, … (so sorting by name keeps their order); returns their paths.
pub fn write_digit_pngs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let images = read_images(&sample_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    (0..n)
        .map(|i| {
            let (w, h) = (images.cols as u32, images.rows as u32);
            let digit = image::GrayImage::from_raw(w, h, images.image(i).to_vec()).unwrap();
            let path = dir.join(format!("digit-{i:05}.png"));
            digit
                .save_with_format(&path, image::ImageFormat::Png)
                .unwrap();
            path
        })
        .collect()
}

/// `n` records of `channels` × 2 × 2 pixels, pixel j of record i `(37 i + 61 j) mod 256`
/// (smooth, so a tiny net learns it), labelled by `label(pixels)`; keys `%08d`.
pub fn ramp_datums(n: u32, channels: u32, label: impl Fn(&[u8]) -> i32) -> Vec<(String, Datum)> {
    (0..n)
        .map(|i| {
            let px: Vec<u8> = (0..4 * channels)
                .map(|j| ((i * 37 + j * 61) % 256) as u8)
                .collect();
            let datum = Datum {
                channels: Some(channels as i32),
                height: Some(2),
                width: Some(2),
                label: Some(label(&px)),
                data: Some(px),
                ..Default::default()
            };
            (format!("{i:08}"), datum)
        })
        .collect()
}

/// `n` random pair records of 2 × 28 × 28 pixels (the siamese nets' input) from ChaCha8 with
/// `seed`, labelled alternately 0 and 1; keys `%08d`.
pub fn random_pair_datums(n: usize, seed: u64) -> Vec<(String, Datum)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let datum = Datum {
                channels: Some(2),
                height: Some(28),
                width: Some(28),
                data: Some((0..2 * 28 * 28).map(|_| rng.random::<u8>()).collect()),
                label: Some((i % 2) as i32),
                ..Default::default()
            };
            (format!("{i:08}"), datum)
        })
        .collect()
}

/// Writes `records` as a new LevelDB at `path`; returns `path`.
pub fn write_db(path: &Path, records: Vec<(String, Datum)>) -> PathBuf {
    siamese_data::leveldb::write_datums(path, records, false).unwrap();
    path.to_path_buf()
}

/// The id of a process that has exited (and was reaped): not running, not soon reused.
pub fn gone_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// The temporary name an atomic write of `target` by process `pid` on this host would leave
/// when killed midway (what the stale-temp sweeper removes once `pid` is gone).
pub fn temp_name_of(target: &str, pid: u32) -> String {
    let mut name = siamese_files::TempName::fresh(target);
    name.pid = pid;
    name.file_name()
}

/// Embedding metrics for tests of what shows or stores them: P@1, MAP@R and the
/// verification accuracy as given, the others fixed plausible values.
pub fn embedding_metrics(
    precision_at_1: f64,
    map_at_r: f64,
    verification: f64,
) -> siamese_report::metrics::EmbeddingMetrics {
    siamese_report::metrics::EmbeddingMetrics {
        points: 100,
        classes: 10,
        precision_at_1,
        r_precision: map_at_r + 0.1,
        map_at_r,
        nmi: 0.7,
        ami: 0.69,
        pairs: 200,
        roc_auc: 0.95,
        eer: 0.1,
        tar_at_far_0_001: 0.4,
        verification_accuracy_mean: verification,
        verification_accuracy_std: 0.02,
        verification_threshold: 0.5,
        pair_accuracy_tuned_on_test: verification + 0.01,
        knn_accuracy: Some(precision_at_1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixtures_are_what_their_docs_say() {
        let ramp = ramp_datums(3, 2, |px| i32::from(px[0] > 128));
        assert_eq!(ramp[2].0, "00000002");
        assert_eq!(ramp[2].1.data.as_deref().unwrap()[..3], [74, 135, 196]);
        assert_eq!(ramp[2].1.label, Some(0));
        assert_eq!(ramp[2].1.data.as_deref().unwrap().len(), 8);
        let pairs = random_pair_datums(2, 42);
        assert_eq!(pairs, random_pair_datums(2, 42));
        assert_eq!(pairs[1].1.label, Some(1));
        assert!(sample_dir().join("t10k-labels-idx1-ubyte.gz").is_file());
        assert!(siamese_files::is_temp_name(&temp_name_of(
            "w.caffemodel",
            gone_pid()
        )));
    }
}
