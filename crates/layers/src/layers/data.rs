//! Data: batches of Caffe Datum records from a LevelDB (via siamese-data's `BatchReader`),
//! scaled by `transform_param.scale`; tops are the data `[batch, c, h, w]` and labels `[batch]`.

use std::path::Path;

use siamese_data::batches::BatchReader;
use siamese_proto::LayerParameter;

use super::{Layer, check_arity};
use crate::{Backend, Blob, LayerError};

/// Caffe's `Data` layer (LevelDB, key order, wrapping around at the end).
#[derive(Debug)]
pub struct DataLayer {
    name: String,
    reader: BatchReader,
    batch: usize,
    /// Labels read when the layer has no label top.
    unused_labels: Vec<f32>,
}

impl DataLayer {
    /// Opens `source` (the resolved `data_param.source`).
    pub fn new(p: &LayerParameter, source: Option<&Path>) -> Result<Self, LayerError> {
        let name = p.name().to_string();
        let dp = p.data_param.clone().unwrap_or_default();
        let tp = p.transform_param.clone().unwrap_or_default();
        if tp.mean_file.is_some() || !tp.mean_value.is_empty() || tp.crop_size() != 0 || tp.mirror()
        {
            return Err(LayerError::config(
                &name,
                "transform_param: only scale is supported (no mean, crop or mirror)",
            ));
        }
        if dp.batch_size() == 0 {
            return Err(LayerError::config(
                &name,
                "data_param.batch_size must be positive",
            ));
        }
        let source =
            source.ok_or_else(|| LayerError::config(&name, "data_param.source is missing"))?;
        let reader = BatchReader::open(source, tp.scale()).map_err(|source| LayerError::Data {
            layer: name.clone(),
            source,
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
            batch: dp.batch_size() as usize,
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
    fn kind(&self) -> &'static str {
        "Data"
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        check_arity(
            &self.name,
            self.kind(),
            bottom.len(),
            0..=0,
            num_tops,
            1..=2,
        )?;
        Ok(Vec::new())
    }

    fn reshape(&mut self, _bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let [c, h, w] = self.reader.datum_shape();
        top[0].reshape(&[self.batch, c, h, w]);
        match top.get_mut(1) {
            Some(labels) => labels.reshape(&[self.batch]),
            None => self.unused_labels.resize(self.batch, 0.0),
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
            source,
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
