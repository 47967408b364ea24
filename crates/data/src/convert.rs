//! The two conversions of Caffe's MNIST example, IDX files in, a Datum LevelDB or LMDB out:
//! siamese pairs (convert_mnist_siamese_data) and one record per digit (convert_mnist_data).

use std::path::Path;

use crate::db::{Backend, write_datums_as};
use crate::pairs::{PairOptions, generate_pairs, pair_datum};
use crate::{DataError, Dataset, record_key};

/// What a conversion wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertReport {
    /// Records written.
    pub records: usize,
    /// Pairs labelled similar (pair databases only).
    pub similar: Option<usize>,
}

/// Writes a siamese pair LevelDB at `out` from an IDX images/labels pair (raw or gzip).
/// Fails before reading anything if `out` exists and `force` is off.
pub fn create_siamese_db(
    images: &Path,
    labels: &Path,
    out: &Path,
    opts: &PairOptions,
    force: bool,
) -> Result<ConvertReport, DataError> {
    create_siamese_db_as(Backend::LevelDb, images, labels, out, opts, force)
}

/// [`create_siamese_db`] writing a database of `backend`.
pub fn create_siamese_db_as(
    backend: Backend,
    images: &Path,
    labels: &Path,
    out: &Path,
    opts: &PairOptions,
    force: bool,
) -> Result<ConvertReport, DataError> {
    refuse_existing(out, force)?;
    let dataset = Dataset::load(images, labels)?.with_classes(&opts.classes);
    opts.check(&dataset)?;
    let pairs = generate_pairs(&dataset, opts);
    let similar = pairs.iter().filter(|p| p.similar).count();
    let records = pairs
        .iter()
        .enumerate()
        .map(|(k, pair)| (record_key(k), pair_datum(&dataset, pair)));
    let records = write_datums_as(out, backend, records, force)?;
    Ok(ConvertReport {
        records,
        similar: Some(similar),
    })
}

/// Writes Caffe's LeNet LevelDB at `out`: one Datum per image, channels 1, label = digit.
pub fn create_mnist_db(
    images: &Path,
    labels: &Path,
    out: &Path,
    force: bool,
) -> Result<ConvertReport, DataError> {
    create_mnist_db_as(Backend::LevelDb, images, labels, out, force)
}

/// [`create_mnist_db`] writing a database of `backend`.
pub fn create_mnist_db_as(
    backend: Backend,
    images: &Path,
    labels: &Path,
    out: &Path,
    force: bool,
) -> Result<ConvertReport, DataError> {
    refuse_existing(out, force)?;
    let dataset = Dataset::load(images, labels)?;
    let records = (0..dataset.len()).map(|i| (record_key(i), dataset.image_datum(i)));
    let records = write_datums_as(out, backend, records, force)?;
    Ok(ConvertReport {
        records,
        similar: None,
    })
}

fn refuse_existing(out: &Path, force: bool) -> Result<(), DataError> {
    if out.exists() && !force {
        return Err(DataError::Exists { path: out.into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batches::BatchReader;
    use crate::leveldb::DatumDb;
    use crate::testdata::{sample_dir, sample_test_set};

    #[test]
    fn siamese_db_from_the_sample_holds_the_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("siamese_test_leveldb");
        let s = sample_dir();
        let (images, labels) = (
            s.join("t10k-images-idx3-ubyte.gz"),
            s.join("t10k-labels-idx1-ubyte.gz"),
        );
        let opts = PairOptions::default();
        let report = create_siamese_db(&images, &labels, &out, &opts, false).unwrap();
        assert_eq!(report.records, 2000);
        let data = sample_test_set();
        let pairs = generate_pairs(&data, &opts);
        assert_eq!(
            report.similar,
            Some(pairs.iter().filter(|p| p.similar).count())
        );
        let db = DatumDb::open(&out).unwrap();
        for (k, (key, datum)) in db.iter().enumerate().step_by(97) {
            assert_eq!(key, record_key(k));
            assert_eq!(*datum, pair_datum(&data, &pairs[k]));
        }
        let reader = BatchReader::open(&out, 0.00390625).unwrap();
        assert_eq!(reader.datum_shape(), [2, 28, 28]);
        // A second run without force is refused and leaves the database alone.
        let err = create_siamese_db(&images, &labels, &out, &opts, false).unwrap_err();
        assert!(matches!(err, DataError::Exists { .. }));
        assert_eq!(DatumDb::open(&out).unwrap().len(), 2000);
    }

    #[test]
    fn mnist_db_has_one_record_per_digit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mnist_test_leveldb");
        let s = sample_dir();
        let report = create_mnist_db(
            &s.join("t10k-images-idx3-ubyte.gz"),
            &s.join("t10k-labels-idx1-ubyte.gz"),
            &out,
            false,
        )
        .unwrap();
        assert_eq!(
            report,
            ConvertReport {
                records: 2000,
                similar: None
            }
        );
        let data = sample_test_set();
        let db = DatumDb::open(&out).unwrap();
        let (key, datum) = db.iter().nth(1234).unwrap();
        assert_eq!(key, "00001234");
        assert_eq!(*datum, data.image_datum(1234));
        assert_eq!(datum.channels(), 1);
    }

    #[test]
    fn bad_input_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("db");
        let s = sample_dir();
        // Images as labels: wrong magic.
        let images = s.join("t10k-images-idx3-ubyte.gz");
        let err = create_mnist_db(&images, &images, &out, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: magic 2051, expected 2049 (IDX labels)",
                images.display()
            )
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
