//! The export's error type: a layer ONNX export does not translate (named), or a net or
//! weights that do not fit together.

use crate::SUPPORTED_TYPES;

/// Why a net cannot be exported. Names are printed escaped (`{:?}`): a name with a newline in
/// it (prototxt strings take `\n`) must not break the one-line message.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A layer type with no ONNX translation.
    #[error(
        "layer {layer:?} ({kind}): not supported by ONNX export (supported: {})",
        SUPPORTED_TYPES.join(", ")
    )]
    Unsupported { layer: String, kind: String },
    /// A supported layer with settings ONNX cannot express exactly.
    #[error("layer {layer:?} ({kind}): {message}")]
    Layer {
        layer: String,
        kind: String,
        message: String,
    },
    /// The net as a whole (no input, unknown shapes, weights of the wrong size).
    #[error("net {net:?}: {message}")]
    Net { net: String, message: String },
}
