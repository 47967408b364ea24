//! Element-wise layers: ReLU (Caffe's leaky `negative_slope`) and Dropout (`dropout_ratio`);
//! each top has its bottom's shape.

use siamese_proto::LayerParameter;

use super::{LayerKind, Rule};
use crate::NetError;

/// Caffe's `ReLU` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReluConfig {
    pub negative_slope: f32,
}

impl ReluConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Result<Self, NetError> {
        let negative_slope = layer.relu_param.unwrap_or_default().negative_slope();
        if !negative_slope.is_finite() {
            return Err(Rule::new(layer.name(), LayerKind::ReLU).field_err(
                "relu_param.negative_slope",
                format!("negative_slope {negative_slope} must be a finite number"),
            ));
        }
        Ok(ReluConfig { negative_slope })
    }
}

/// Caffe's `Dropout` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutConfig {
    /// The probability of dropping an input, in `[0, 1)`.
    pub ratio: f32,
}

impl DropoutConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Result<Self, NetError> {
        let ratio = layer.dropout_param.unwrap_or_default().dropout_ratio();
        if !(0.0..1.0).contains(&ratio) {
            return Err(Rule::new(layer.name(), LayerKind::Dropout).field_err(
                "dropout_param.dropout_ratio",
                format!("dropout_ratio {ratio} must be in [0, 1)"),
            ));
        }
        Ok(DropoutConfig { ratio })
    }
}
