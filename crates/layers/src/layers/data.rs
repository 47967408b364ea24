//! Data: batches of Caffe Datum records from a LevelDB or LMDB (siamese-data's `BatchReader`),
//! scaled by `transform_param.scale`; tops are the data `[batch, c, h, w]` and labels `[batch]`.

use std::path::Path;

use siamese_data::batches::BatchReader;
use siamese_net::LayerKind;
use siamese_net::layer::DataConfig;

use super::Layer;
use crate::blob::try_resize;
use crate::{Backend, Blob, LayerError};

/// Caffe's `Data` layer (`backend: LEVELDB` or `LMDB`, key order, wrapping around at the end).
#[derive(Debug)]
pub struct DataLayer {
    name: String,
    reader: BatchReader,
    batch: usize,
    /// Labels read when the layer has no label top.
    unused_labels: Vec<f32>,
}

impl DataLayer {
    /// Opens `source` (the resolved `data_param.source`). Fails for the transformations this
    /// implementation does not do (mean, crop, mirror).
    pub fn new(name: &str, config: &DataConfig, source: Option<&Path>) -> Result<Self, LayerError> {
        let name = name.to_string();
        if config.has_mean || config.crop_size != 0 || config.mirror {
            return Err(LayerError::config(
                &name,
                "transform_param: only scale is supported (no mean, crop or mirror)",
            ));
        }
        let source =
            source.ok_or_else(|| LayerError::config(&name, "data_param.source is missing"))?;
        let reader =
            BatchReader::open_as(source, config.backend(), config.scale).map_err(|source| {
                LayerError::Data {
                    layer: name.clone(),
                    error: source,
                }
            })?;
        if reader.is_empty() {
            return Err(LayerError::config(
                &name,
                format!("{}: the database is empty", source.display()),
            ));
        }
        Ok(Self {
            name,
            reader,
            batch: config.batch_size,
            unused_labels: Vec::new(),
        })
    }

    /// A Data layer over an already opened reader (tests, tools).
    pub fn from_reader(name: &str, reader: BatchReader, batch: usize) -> Self {
        Self {
            name: name.to_string(),
            reader,
            batch,
            unused_labels: Vec::new(),
        }
    }
}

impl Layer for DataLayer {
    fn kind(&self) -> LayerKind {
        LayerKind::Data
    }

    fn setup(&mut self, _bottom: &[Blob], _num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        Ok(Vec::new())
    }

    fn reshape(&mut self, _bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let [c, h, w] = self.reader.datum_shape();
        top[0].reshape(&[self.batch, c, h, w])?;
        match top.get_mut(1) {
            Some(labels) => labels.reshape(&[self.batch])?,
            None => try_resize(&mut self.unused_labels, self.batch, 0.0, "labels")?,
        }
        Ok(())
    }

    fn forward(
        &mut self,
        _backend: &dyn Backend,
        _bottom: &[Blob],
        _params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        let result = match top {
            [data, labels] => self.reader.next_batch(&mut data.data, &mut labels.data),
            [data] => self
                .reader
                .next_batch(&mut data.data, &mut self.unused_labels),
            _ => unreachable!("setup checked the tops"),
        };
        result.map_err(|source| LayerError::Data {
            layer: self.name.clone(),
            error: source,
        })
    }

    fn backward(
        &mut self,
        _backend: &dyn Backend,
        _top: &[Blob],
        _params: &mut [Blob],
        _propagate_down: &[bool],
        _bottom: &mut [Blob],
    ) {
    }

    fn data_position(&self) -> Option<usize> {
        Some(self.reader.position())
    }

    fn seek_data(&mut self, position: usize) -> Result<(), LayerError> {
        self.reader.seek(position);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::data_parameter::Db;
    use siamese_proto::{DataParameter, Datum, LayerParameter, TransformationParameter};

    use super::*;
    use crate::CpuBackend;

    /// Three 1×1×2 records with bytes (10i, 10i + 1) and label i, in a temporary LevelDB.
    fn db(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("db");
        let records = (0..3u8).map(|i| {
            let datum = Datum {
                channels: Some(1),
                height: Some(1),
                width: Some(2),
                data: Some(vec![10 * i, 10 * i + 1]),
                label: Some(i32::from(i)),
                ..Default::default()
            };
            (format!("{i:08}"), datum)
        });
        siamese_data::leveldb::write_datums(&path, records.collect::<Vec<_>>(), false).unwrap();
        path
    }

    fn open(p: &LayerParameter, source: &Path) -> Result<DataLayer, LayerError> {
        DataLayer::new(p.name(), &DataConfig::parse(p).unwrap(), Some(source))
    }

    fn layer(source: &Path, batch: u32, scale: f32) -> DataLayer {
        let p = LayerParameter {
            name: Some("data".into()),
            data_param: Some(DataParameter {
                batch_size: Some(batch),
                ..Default::default()
            }),
            transform_param: Some(TransformationParameter {
                scale: Some(scale),
                ..Default::default()
            }),
            ..Default::default()
        };
        open(&p, source).unwrap()
    }

    #[test]
    fn batches_scale_wrap_and_seek() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = layer(&db(dir.path()), 2, 0.5);
        let mut top = [Blob::default(), Blob::default()];
        data.setup(&[], 2).unwrap();
        data.reshape(&[], &mut top).unwrap();
        assert_eq!(
            (top[0].shape.as_slice(), top[1].shape.as_slice()),
            (&[2, 1, 1, 2][..], &[2][..])
        );
        data.forward(&CpuBackend, &[], &[], &mut top).unwrap();
        assert_eq!(
            (top[0].data.as_slice(), top[1].data.as_slice()),
            (&[0.0, 0.5, 5.0, 5.5][..], &[0.0, 1.0][..])
        );
        data.forward(&CpuBackend, &[], &[], &mut top).unwrap();
        assert_eq!(top[1].data, [2.0, 0.0], "wraps to the first record");
        assert_eq!(data.data_position(), Some(1));
        data.seek_data(2).unwrap();
        let mut one = [Blob::default()];
        data.setup(&[], 1).unwrap();
        data.reshape(&[], &mut one).unwrap();
        data.forward(&CpuBackend, &[], &[], &mut one).unwrap();
        assert_eq!(one[0].data, [10.0, 10.5, 0.0, 0.5], "without a label top");
    }

    #[test]
    fn unreadable_source_and_unsupported_transform_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = LayerParameter {
            name: Some("data".into()),
            data_param: Some(DataParameter {
                batch_size: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        };
        let missing = dir.path().join("nothing");
        let err = open(&p, &missing).unwrap_err().to_string();
        assert!(
            err.starts_with("layer \"data\": ") && err.contains("nothing"),
            "{err}"
        );
        let p = LayerParameter {
            name: Some("data".into()),
            data_param: Some(DataParameter {
                batch_size: Some(4),
                ..Default::default()
            }),
            transform_param: Some(TransformationParameter {
                mirror: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = open(&p, &missing).unwrap_err().to_string();
        assert_eq!(
            err,
            "layer \"data\": transform_param: only scale is supported (no mean, crop or mirror)"
        );
    }

    #[test]
    fn lmdb_sources_are_read_and_a_wrong_backend_says_which_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let layer = |backend: Db| LayerParameter {
            name: Some("mnist".into()),
            data_param: Some(DataParameter {
                batch_size: Some(2),
                backend: Some(backend as i32),
                ..Default::default()
            }),
            ..Default::default()
        };
        let lmdb = dir.path().join("mnist_train_lmdb");
        let records = siamese_data::DatumDb::open(&db(dir.path())).unwrap();
        siamese_data::write_datums_as(&lmdb, siamese_data::Backend::Lmdb, records, false).unwrap();
        let data = open(&layer(Db::Lmdb), &lmdb).unwrap();
        assert_eq!(data.reader.len(), 3);
        let err = open(&layer(Db::Leveldb), &lmdb).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "layer \"mnist\": {}: LevelDB: an LMDB folder (data.mdb), expected a LevelDB \
                 (backend: LMDB reads it)",
                lmdb.display()
            )
        );
    }
}
