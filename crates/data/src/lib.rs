//! siamese-data: bytes in, tensors out. IDX parsing, PNG/JPEG images as grey input, Caffe-style
//! siamese pair generation, the Caffe `Datum` LevelDB and LMDB readers/writers, batches of `f32`.
//!
//! Knows nothing about nets, and never modifies a user's database (see [`db::DatumDb`]).

pub mod batches;
pub mod convert;
pub mod db;
mod error;
pub mod idx;
pub mod images;
mod integrity;
pub mod leveldb;
pub mod lmdb;
mod lmdb_pages;
pub mod pairs;

use std::path::Path;

pub use db::{Backend, DatumDb, write_datums_as};
pub use error::DataError;
pub use siamese_proto::Datum;

use idx::{IdxImages, IdxLabels};

/// An images file and its labels file, checked to hold the same number of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub images: IdxImages,
    pub labels: IdxLabels,
}

impl Dataset {
    /// Reads both IDX files (raw or gzip) and checks that their counts agree.
    pub fn load(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
        let image_data = idx::read_images(images)?;
        let label_data = idx::read_labels(labels)?;
        if image_data.count != label_data.len() {
            return Err(DataError::CountMismatch {
                images_path: images.into(),
                labels_path: labels.into(),
                images: image_data.count,
                labels: label_data.len(),
            });
        }
        Ok(Dataset {
            images: image_data,
            labels: label_data,
        })
    }

    /// Number of items (images, and labels).
    pub fn len(&self) -> usize {
        self.images.count
    }

    pub fn is_empty(&self) -> bool {
        self.images.count == 0
    }

    /// The items whose label `classes` keeps, in their order.
    pub fn with_classes(&self, classes: &pairs::ClassFilter) -> Dataset {
        if *classes == pairs::ClassFilter::All {
            return self.clone();
        }
        let kept: Vec<usize> = (0..self.len())
            .filter(|&i| classes.keeps(self.labels.labels[i]))
            .collect();
        let mut pixels = Vec::with_capacity(kept.len() * self.images.image_size());
        kept.iter()
            .for_each(|&i| pixels.extend_from_slice(self.images.image(i)));
        Dataset {
            images: IdxImages {
                count: kept.len(),
                rows: self.images.rows,
                cols: self.images.cols,
                pixels,
            },
            labels: IdxLabels {
                labels: kept.iter().map(|&i| self.labels.labels[i]).collect(),
            },
        }
    }

    /// Caffe's convert_mnist_data record for item `i`: channels 1, label = the digit.
    pub fn image_datum(&self, i: usize) -> Datum {
        Datum {
            channels: Some(1),
            height: Some(self.images.rows as i32),
            width: Some(self.images.cols as i32),
            data: Some(self.images.image(i).to_vec()),
            label: Some(i32::from(self.labels.labels[i])),
            ..Default::default()
        }
    }
}

/// Caffe's LevelDB key for record number `item`: the number zero-padded to 8 digits.
pub fn record_key(item: usize) -> String {
    format!("{item:08}")
}

#[cfg(test)]
pub(crate) mod testdata {
    //! The embedded MNIST sample, shared by this crate's tests.
    use std::path::PathBuf;

    pub fn sample_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample")
    }

    pub fn sample_test_set() -> super::Dataset {
        let dir = sample_dir();
        super::Dataset::load(
            &dir.join("t10k-images-idx3-ubyte.gz"),
            &dir.join("t10k-labels-idx1-ubyte.gz"),
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_loads_with_matching_counts() {
        let dir = testdata::sample_dir();
        let train = Dataset::load(
            &dir.join("train-images-idx3-ubyte.gz"),
            &dir.join("train-labels-idx1-ubyte.gz"),
        )
        .unwrap();
        assert_eq!(
            (train.len(), train.images.rows, train.images.cols),
            (8000, 28, 28)
        );
        assert!(train.labels.labels.iter().all(|&l| l < 10));
        assert_eq!(testdata::sample_test_set().len(), 2000);
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = testdata::sample_dir();
        let images = dir.join("t10k-images-idx3-ubyte.gz");
        let labels = dir.join("train-labels-idx1-ubyte.gz");
        let err = Dataset::load(&images, &labels).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: 8000 labels, expected 2000 (the image count of {})",
                labels.display(),
                images.display()
            )
        );
    }

    #[test]
    fn keys_are_eight_digits() {
        assert_eq!(record_key(0), "00000000");
        assert_eq!(record_key(59999), "00059999");
    }
}
