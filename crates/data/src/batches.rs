//! Batches of `f32` for the Data layer: every record of a Datum database held once as bytes,
//! scaled like Caffe's transform_param `scale`, read in key order and cycling at the end.

use std::path::{Path, PathBuf};

use crate::db::{Backend, DatumDb};
use crate::{DataError, Datum};

/// Streams the records of a Caffe Datum database (LevelDB or LMDB) as `(data, labels)` batches, the way Caffe's
/// DataLayer does: key order, wrapping around to the first record after the last.
#[derive(Debug, Clone)]
pub struct BatchReader {
    path: PathBuf,
    shape: [usize; 3],
    scale: f32,
    /// `len * c * h * w` bytes, record after record.
    bytes: Vec<u8>,
    labels: Vec<f32>,
    position: usize,
}

impl BatchReader {
    /// Loads every record of the database at `path` (read-only); `scale` multiplies each byte
    /// (Caffe's `transform_param { scale: 0.00390625 }` maps 0..=255 to [0, 1)).
    pub fn open(path: &Path, scale: f32) -> Result<BatchReader, DataError> {
        BatchReader::from_db(DatumDb::open(path)?, scale)
    }

    /// Like [`BatchReader::open`] for a database of `backend` (Caffe's `data_param.backend`).
    pub fn open_as(path: &Path, backend: Backend, scale: f32) -> Result<BatchReader, DataError> {
        BatchReader::from_db(DatumDb::open_as(path, backend)?, scale)
    }

    /// Checks the records of `db` (raw pixel bytes, one shape for all) and holds them as a
    /// reader; errors name `db.path()`.
    pub fn from_db(db: DatumDb, scale: f32) -> Result<BatchReader, DataError> {
        let path = db.path();
        let (first_key, first) = db.iter().next().ok_or_else(|| DataError::Empty {
            path: path.to_path_buf(),
        })?;
        let shape = datum_shape(path, first_key, first)?;
        let size = shape.iter().product::<usize>();
        let out_of_memory = |bytes: usize| DataError::OutOfMemory {
            path: path.to_path_buf(),
            records: db.len(),
            bytes,
        };
        let total = db.len().saturating_mul(size);
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(total)
            .map_err(|_| out_of_memory(total))?;
        let mut labels = Vec::new();
        labels
            .try_reserve_exact(db.len())
            .map_err(|_| out_of_memory(db.len().saturating_mul(4)))?;
        for (key, datum) in db.iter() {
            let this = datum_shape(path, key, datum)?;
            if this != shape {
                return Err(record_error(
                    path,
                    key,
                    format!("shape {this:?}"),
                    format!("{shape:?} like the first record"),
                ));
            }
            bytes.extend_from_slice(datum.data());
            labels.push(datum.label() as f32);
        }
        Ok(BatchReader {
            path: path.to_path_buf(),
            shape,
            scale,
            bytes,
            labels,
            position: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (channels, height, width) of every record.
    pub fn datum_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Fills `labels.len()` records: `data` gets `labels.len() * c * h * w` scaled values,
    /// `labels` the records' labels. Wraps to the first record after the last.
    pub fn next_batch(&mut self, data: &mut [f32], labels: &mut [f32]) -> Result<(), DataError> {
        let size = self.shape.iter().product::<usize>();
        if data.len() != labels.len() * size {
            return Err(DataError::Buffers {
                problem: format!("{} data values for {} labels", data.len(), labels.len()),
                expected: format!(
                    "{} x {} (labels x channels x height x width)",
                    labels.len(),
                    size
                ),
            });
        }
        for (out, label) in data.chunks_exact_mut(size).zip(labels.iter_mut()) {
            let record = &self.bytes[self.position * size..(self.position + 1) * size];
            for (o, &b) in out.iter_mut().zip(record) {
                *o = f32::from(b) * self.scale;
            }
            *label = self.labels[self.position];
            self.position = (self.position + 1) % self.labels.len();
        }
        Ok(())
    }

    /// Back to the first record.
    pub fn rewind(&mut self) {
        self.position = 0;
    }

    /// Index of the record the next batch starts with.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Continues from record `pos` (taken modulo `len()`, so `iteration * batch_size` works).
    pub fn seek(&mut self, pos: usize) {
        self.position = pos % self.labels.len();
    }
}

/// The (c, h, w) of a byte Datum whose data holds exactly c * h * w bytes.
fn datum_shape(path: &Path, key: &str, datum: &Datum) -> Result<[usize; 3], DataError> {
    let dims = [datum.channels(), datum.height(), datum.width()];
    if datum.encoded() {
        return Err(record_error(
            path,
            key,
            "encoded image".into(),
            "raw pixel bytes".into(),
        ));
    }
    if dims.iter().any(|&d| d <= 0) {
        return Err(record_error(
            path,
            key,
            format!("channels/height/width {dims:?}"),
            "positive dimensions".into(),
        ));
    }
    let shape = dims.map(|d| d as usize);
    // Three positive i32s multiply to at most 2^93: exact in u128, not always in usize.
    let size: u128 = dims.iter().map(|&d| d as u128).product();
    if datum.data().len() as u128 != size {
        let what = if datum.data().is_empty() && !datum.float_data.is_empty() {
            "float_data only (not supported)".to_string()
        } else {
            format!("{} data bytes", datum.data().len())
        };
        return Err(record_error(
            path,
            key,
            what,
            format!("{size} bytes (c x h x w)"),
        ));
    }
    Ok(shape)
}

fn record_error(path: &Path, key: &str, problem: String, expected: String) -> DataError {
    DataError::Record {
        path: path.into(),
        key: key.into(),
        problem,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leveldb::write_datums;
    use crate::record_key;

    fn datum(i: usize) -> Datum {
        Datum {
            channels: Some(2),
            height: Some(1),
            width: Some(2),
            data: Some(vec![i as u8, 255, 0, 128]),
            label: Some(i as i32 % 2),
            ..Default::default()
        }
    }

    fn reader(n: usize) -> (tempfile::TempDir, BatchReader) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write_datums(&path, (0..n).map(|i| (record_key(i), datum(i))), false).unwrap();
        let r = BatchReader::open(&path, 0.5).unwrap();
        (dir, r)
    }

    #[test]
    fn batches_scale_bytes_and_cycle_in_key_order() {
        let (_dir, mut r) = reader(3);
        assert_eq!(r.datum_shape(), [2, 1, 2]);
        assert_eq!(r.len(), 3);
        let mut data = [0f32; 8];
        let mut labels = [0f32; 2];
        r.next_batch(&mut data, &mut labels).unwrap();
        assert_eq!(data, [0.0, 127.5, 0.0, 64.0, 0.5, 127.5, 0.0, 64.0]);
        assert_eq!(labels, [0.0, 1.0]);
        assert_eq!(r.position(), 2);
        r.next_batch(&mut data, &mut labels).unwrap();
        assert_eq!((data[0], data[4]), (1.0, 0.0), "record 2 then record 0");
        assert_eq!(labels, [0.0, 0.0]);
        assert_eq!(r.position(), 1);
        r.seek(7);
        assert_eq!(r.position(), 1);
        r.rewind();
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn wrong_buffer_sizes_are_errors() {
        let (_dir, mut r) = reader(3);
        let err = r.next_batch(&mut [0f32; 7], &mut [0f32; 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch buffers: 7 data values for 2 labels, expected 2 x 4 (labels x channels x height x width)"
        );
    }

    #[test]
    fn mixed_shapes_and_short_data_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut odd = datum(1);
        odd.data = Some(vec![1, 2, 3]);
        write_datums(
            &path,
            [(record_key(0), datum(0)), (record_key(1), odd)],
            false,
        )
        .unwrap();
        let err = BatchReader::open(&path, 1.0).unwrap_err().to_string();
        assert!(
            err.ends_with("record \"00000001\": 3 data bytes, expected 4 bytes (c x h x w)"),
            "{err}"
        );
    }

    #[test]
    fn empty_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write_datums(&path, [], false).unwrap();
        let err = BatchReader::open(&path, 1.0).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
    }

    /// Dimensions whose product overflows usize used to panic (an overflow) instead of being
    /// reported as a record that does not match its data.
    #[test]
    fn huge_dimensions_are_an_error_not_an_overflow() {
        use prost::Message;
        let huge = Datum {
            channels: Some(i32::MAX),
            height: Some(i32::MAX),
            width: Some(i32::MAX),
            data: Some(vec![1, 2, 3]),
            ..Default::default()
        };
        let raw = [(b"00000000".to_vec(), huge.encode_to_vec())];
        let db = DatumDb::from_raw(Path::new("db"), raw).unwrap();
        let err = BatchReader::from_db(db, 1.0).unwrap_err().to_string();
        assert_eq!(
            err,
            "db: record \"00000000\": 3 data bytes, expected 9903520300447984150353281023 bytes (c x h x w)"
        );
    }
}
