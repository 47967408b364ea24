//! Typed layer configs: each supported Caffe layer type is parsed once from its LayerParameter
//! (with Caffe's checks) and carries its output-shape rule; one file per layer family.

mod accuracy;
mod activation;
mod conv;
mod data;
mod inner_product;
mod loss;
mod pool;
mod slice;
mod softmax;
#[cfg(test)]
mod tests;

use std::ops::RangeInclusive;

use siamese_proto::{FillerParameter, LayerParameter};

pub use accuracy::AccuracyConfig;
pub use activation::{DropoutConfig, ReluConfig};
pub use conv::{ConvConfig, conv_output_len};
pub use data::{DataConfig, InputConfig};
pub use inner_product::InnerProductConfig;
pub use loss::{ContrastiveLossConfig, check_euclidean_shapes};
pub use pool::{PoolConfig, PoolMethod, pooled_len};
pub use slice::SliceConfig;
pub use softmax::{SoftmaxConfig, SoftmaxLossConfig};

use crate::NetError;
use crate::shape::{Shape, count, fmt_shape};

/// A layer's settings, typed, one variant per supported Caffe type (the variant's name is the
/// type's name). [`LayerKind`] is its list of names; adding a type is one variant here and its
/// family's file.
#[derive(Debug, Clone, PartialEq, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(LayerKind),
    derive(
        Hash,
        strum::IntoStaticStr,
        strum::VariantArray,
        strum::EnumString,
        strum::Display
    )
)]
pub enum LayerConfig {
    Accuracy(AccuracyConfig),
    ContrastiveLoss(ContrastiveLossConfig),
    Convolution(ConvConfig),
    Data(DataConfig),
    Dropout(DropoutConfig),
    EuclideanLoss,
    InnerProduct(InnerProductConfig),
    Input(InputConfig),
    Pooling(PoolConfig),
    ReLU(ReluConfig),
    Slice(SliceConfig),
    Softmax(SoftmaxConfig),
    SoftmaxWithLoss(SoftmaxLossConfig),
    Split,
}

impl LayerKind {
    /// Every supported type, in the order of [`LayerConfig`] (alphabetical).
    pub const ALL: &'static [LayerKind] = <LayerKind as strum::VariantArray>::VARIANTS;

    /// Caffe's type name, e.g. `"Convolution"`.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The supported type called `name` (Caffe's spelling), if any.
    pub fn from_name(name: &str) -> Option<LayerKind> {
        name.parse().ok()
    }

    /// The names of [`LayerKind::ALL`].
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }

    /// Caffe's LossLayer subclasses: their first top has loss weight 1 by default.
    pub fn is_loss(self) -> bool {
        matches!(
            self,
            LayerKind::ContrastiveLoss | LayerKind::EuclideanLoss | LayerKind::SoftmaxWithLoss
        )
    }

    /// How many bottoms and tops the type takes (Caffe's ExactNum/Min/MaxBottomBlobs).
    fn arity(self) -> (RangeInclusive<usize>, RangeInclusive<usize>) {
        use LayerKind::*;
        const MANY: usize = usize::MAX;
        match self {
            Data => (0..=0, 1..=2),
            Input => (0..=0, 1..=MANY),
            Slice | Split => (1..=1, 1..=MANY),
            ReLU | Dropout | Softmax | InnerProduct => (1..=1, 1..=1),
            // Checked by its rule: as many tops as bottoms.
            Convolution => (0..=MANY, 0..=MANY),
            Pooling => (1..=1, 1..=2),
            SoftmaxWithLoss | Accuracy => (2..=2, 1..=2),
            ContrastiveLoss => (3..=3, 1..=1),
            EuclideanLoss => (2..=2, 1..=1),
        }
    }
}

/// What a layer's rule derives: one shape per top, one per parameter blob (`None`: unknown
/// because an input shape is unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    pub tops: Vec<Option<Shape>>,
    pub params: Vec<Option<Shape>>,
}

impl Inferred {
    /// `tops` tops of the same (maybe unknown) shape, no parameters.
    fn same(shape: Option<Shape>, tops: usize) -> Self {
        Inferred {
            tops: vec![shape; tops],
            params: vec![],
        }
    }

    /// A loss or accuracy: a scalar top, and `extra` as the second top when there is one.
    fn scalar(extra: Option<Shape>, tops: usize) -> Self {
        let mut all = vec![Some(vec![])];
        if tops > 1 {
            all.push(extra);
        }
        Inferred {
            tops: all,
            params: vec![],
        }
    }
}

impl LayerConfig {
    /// Parses `layer`'s settings for its type, with the checks Caffe makes of them before it
    /// knows any shape (LayerSetUp). Its bottoms and tops are checked by [`LayerConfig::infer`].
    pub fn parse(layer: &LayerParameter) -> Result<LayerConfig, NetError> {
        let kind = LayerKind::from_name(layer.r#type()).ok_or_else(|| unknown_type(layer))?;
        Ok(match kind {
            LayerKind::Accuracy => Self::Accuracy(AccuracyConfig::parse(layer)),
            LayerKind::ContrastiveLoss => {
                Self::ContrastiveLoss(ContrastiveLossConfig::parse(layer)?)
            }
            LayerKind::Convolution => Self::Convolution(ConvConfig::parse(layer)?),
            LayerKind::Data => Self::Data(DataConfig::parse(layer)?),
            LayerKind::Dropout => Self::Dropout(DropoutConfig::parse(layer)?),
            LayerKind::EuclideanLoss => Self::EuclideanLoss,
            LayerKind::InnerProduct => Self::InnerProduct(InnerProductConfig::parse(layer)?),
            LayerKind::Input => Self::Input(InputConfig::parse(layer)?),
            LayerKind::Pooling => Self::Pooling(PoolConfig::parse(layer)?),
            LayerKind::ReLU => Self::ReLU(ReluConfig::parse(layer)?),
            LayerKind::Slice => Self::Slice(SliceConfig::parse(layer)),
            LayerKind::Softmax => Self::Softmax(SoftmaxConfig::parse(layer)),
            LayerKind::SoftmaxWithLoss => Self::SoftmaxWithLoss(SoftmaxLossConfig::parse(layer)),
            LayerKind::Split => Self::Split,
        })
    }

    pub fn kind(&self) -> LayerKind {
        self.into()
    }

    /// The fillers of the parameter blobs, in Caffe's order (weight, then bias); their number
    /// is the number of parameter blobs.
    pub fn param_fillers(&self) -> Vec<FillerParameter> {
        match self {
            Self::Convolution(c) => c.param_fillers(),
            Self::InnerProduct(c) => c.param_fillers(),
            _ => vec![],
        }
    }

    /// The layer's shape rule (Caffe's Reshape checks included): checks the number of bottoms
    /// and tops, then derives the shapes of its `tops` tops and of its parameter blobs from the
    /// shapes of its bottoms. `data_shape` is the `[channels, height, width]` of a Data
    /// layer's records when known.
    pub fn infer(
        &self,
        layer: &str,
        bottoms: &[Option<Shape>],
        tops: usize,
        data_shape: Option<[usize; 3]>,
    ) -> Result<Inferred, NetError> {
        let r = Rule::new(layer, self.kind());
        let (want_bottoms, want_tops) = self.kind().arity();
        r.counts(bottoms.len(), want_bottoms, tops, want_tops)?;
        let first = || bottoms[0].clone();
        let bottom = |i: usize| bottoms[i].as_deref();
        match self {
            Self::Data(c) => c.infer(&r, data_shape, tops),
            Self::Input(c) => c.infer(&r, tops),
            Self::Slice(c) => c.infer(&r, bottoms[0].as_deref(), tops),
            Self::Split | Self::ReLU(_) | Self::Dropout(_) => Ok(Inferred::same(first(), tops)),
            Self::Softmax(c) => {
                if let Some(b) = &bottoms[0] {
                    c.axis(&r, b)?;
                }
                Ok(Inferred::same(first(), tops))
            }
            Self::Convolution(c) => c.infer(&r, bottoms, tops),
            Self::Pooling(c) => c.infer(&r, bottoms[0].as_deref(), tops),
            Self::InnerProduct(c) => c.infer(&r, bottoms[0].as_deref()),
            Self::SoftmaxWithLoss(c) => {
                c.check_labels(&r, bottoms)?;
                Ok(Inferred::scalar(first(), tops))
            }
            Self::Accuracy(c) => {
                let classes = c.classes(&r, bottoms)?;
                Ok(Inferred::scalar(classes.map(|c| vec![c]), tops))
            }
            Self::ContrastiveLoss(_) => {
                loss::check_contrastive(&r, bottom(0), bottom(1), bottom(2))?;
                Ok(Inferred::scalar(None, tops))
            }
            Self::EuclideanLoss => {
                loss::check_euclidean(&r, bottom(0), bottom(1))?;
                Ok(Inferred::scalar(None, tops))
            }
        }
    }
}

fn unknown_type(layer: &LayerParameter) -> NetError {
    NetError::UnknownLayerType {
        layer: layer.name().to_string(),
        kind: layer.r#type().to_string(),
        supported: LayerKind::names(),
    }
}

/// The layer a rule is checked for: names it in errors.
pub(crate) struct Rule<'a> {
    layer: &'a str,
    kind: LayerKind,
}

impl<'a> Rule<'a> {
    pub(crate) fn new(layer: &'a str, kind: LayerKind) -> Self {
        Rule { layer, kind }
    }

    pub(crate) fn err(&self, message: impl Into<String>) -> NetError {
        NetError::layer(self.layer, self.kind.name(), message)
    }

    /// An error in the setting `field` (its path inside the layer, e.g.
    /// `convolution_param.stride`), which names its line once the file is known.
    pub(crate) fn field_err(&self, field: &'static str, message: impl Into<String>) -> NetError {
        NetError::LayerField {
            layer: self.layer.to_string(),
            kind: self.kind.name().to_string(),
            field,
            message: message.into(),
        }
    }

    fn counts(
        &self,
        nb: usize,
        bottoms: RangeInclusive<usize>,
        nt: usize,
        tops: RangeInclusive<usize>,
    ) -> Result<(), NetError> {
        let want = |r: &RangeInclusive<usize>| {
            if r.start() == r.end() {
                r.start().to_string()
            } else if *r.end() == usize::MAX {
                format!("at least {}", r.start())
            } else {
                format!("{} to {}", r.start(), r.end())
            }
        };
        if !bottoms.contains(&nb) {
            return Err(self.err(format!("needs {} bottom(s), has {nb}", want(&bottoms))));
        }
        if !tops.contains(&nt) {
            return Err(self.err(format!("needs {} top(s), has {nt}", want(&tops))));
        }
        Ok(())
    }

    /// Caffe's CanonicalAxisIndex.
    pub(crate) fn axis(&self, axis: i32, shape: &[usize]) -> Result<usize, NetError> {
        let n = shape.len() as i64;
        let a = i64::from(axis);
        if a < -n || a >= n {
            return Err(self.err(format!(
                "axis {axis} is out of range for a {n}-D input {}",
                fmt_shape(shape)
            )));
        }
        Ok(if a < 0 { (a + n) as usize } else { a as usize })
    }

    pub(crate) fn checked(&self, s: Shape) -> Result<Shape, NetError> {
        count(&s)
            .map(|_| s.clone())
            .ok_or_else(|| self.err(format!("shape {} is too large", fmt_shape(&s))))
    }
}

/// The fillers of a weight + optional bias pair (Caffe's default, constant 0, when not given).
fn weight_and_bias(
    weight: &Option<FillerParameter>,
    bias: &Option<FillerParameter>,
    bias_term: bool,
) -> Vec<FillerParameter> {
    let mut fillers = vec![weight.clone().unwrap_or_default()];
    if bias_term {
        fillers.push(bias.clone().unwrap_or_default());
    }
    fillers
}
