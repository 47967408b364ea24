//! The entry layers: Data (Caffe's DataParameter and TransformationParameter; records read
//! by siamese-data) and Input (`input_param.shape`, tops filled by the caller).

use siamese_proto::LayerParameter;
use siamese_proto::data_parameter::Db;

use super::{Inferred, LayerKind, Rule};
use crate::NetError;
use crate::shape::Shape;

/// Caffe's `Data` settings (the source path is resolved by the net; see `LayerSpec`).
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    pub batch_size: usize,
    /// `data_param.source` as written.
    pub source: Option<String>,
    pub lmdb: bool,
    pub scale: f32,
    /// 0: no cropping.
    pub crop_size: usize,
    pub mirror: bool,
    /// A `mean_file` or `mean_value`s are given.
    pub has_mean: bool,
}

impl DataConfig {
    /// The database kind `data_param.backend` names.
    pub fn backend(&self) -> siamese_data::Backend {
        if self.lmdb {
            siamese_data::Backend::Lmdb
        } else {
            siamese_data::Backend::LevelDb
        }
    }

    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Result<Self, NetError> {
        let dp = layer.data_param.clone().unwrap_or_default();
        let tp = layer.transform_param.clone().unwrap_or_default();
        let r = Rule::new(layer.name(), LayerKind::Data);
        if dp.batch_size() == 0 {
            return Err(r.field_err(
                "data_param.batch_size",
                "data_param.batch_size must be positive",
            ));
        }
        if !tp.scale().is_finite() {
            return Err(r.field_err(
                "transform_param.scale",
                format!(
                    "transform_param.scale {} must be a finite number",
                    tp.scale()
                ),
            ));
        }
        Ok(DataConfig {
            batch_size: dp.batch_size() as usize,
            lmdb: dp.backend() == Db::Lmdb,
            source: dp.source,
            scale: tp.scale(),
            crop_size: tp.crop_size() as usize,
            mirror: tp.mirror(),
            has_mean: tp.mean_file.is_some() || !tp.mean_value.is_empty(),
        })
    }

    /// `data_shape`: the `[channels, height, width]` of the records, when known.
    pub(super) fn infer(
        &self,
        r: &Rule,
        data_shape: Option<[usize; 3]>,
        tops: usize,
    ) -> Result<Inferred, NetError> {
        let (batch, crop) = (self.batch_size, self.crop_size);
        let top = match data_shape {
            Some([c, h, w]) if crop > 0 => {
                if crop > h || crop > w {
                    return Err(r.err(format!(
                        "crop_size {crop} is larger than the {h}x{w} records"
                    )));
                }
                Some(r.checked(vec![batch, c, crop, crop])?)
            }
            Some([c, h, w]) => Some(r.checked(vec![batch, c, h, w])?),
            None => None,
        };
        let mut all = vec![top];
        if tops > 1 {
            all.push(Some(vec![batch]));
        }
        Ok(Inferred {
            tops: all,
            params: vec![],
        })
    }
}

/// Caffe's `Input` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct InputConfig {
    /// One shape for every top, or one per top.
    pub shapes: Vec<Shape>,
}

impl InputConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Result<Self, NetError> {
        let r = Rule::new(layer.name(), LayerKind::Input);
        let given = layer.input_param.as_ref().map_or(&[][..], |p| &p.shape);
        let shapes = given
            .iter()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|&d| {
                        usize::try_from(d)
                            .map_err(|_| r.err(format!("negative dimension {d} in input shape")))
                    })
                    .collect::<Result<Shape, _>>()
            })
            .collect::<Result<_, _>>()?;
        Ok(InputConfig { shapes })
    }

    /// The shape of top `index` (of `tops`), checking there is one shape or one per top.
    pub fn top_shape(&self, layer: &str, index: usize, tops: usize) -> Result<&Shape, NetError> {
        let n = self.shapes.len();
        if !(n == 1 || n == tops) {
            return Err(Rule::new(layer, LayerKind::Input).err(format!(
                "input_param needs 1 shape or one per top ({tops}), has {n}"
            )));
        }
        Ok(&self.shapes[if n == 1 { 0 } else { index }])
    }

    pub(super) fn infer(&self, r: &Rule, tops: usize) -> Result<Inferred, NetError> {
        let tops = (0..tops)
            .map(|i| {
                let shape = self.top_shape(r.layer, i, tops)?;
                Ok(Some(r.checked(shape.clone())?))
            })
            .collect::<Result<_, NetError>>()?;
        Ok(Inferred {
            tops,
            params: vec![],
        })
    }
}
