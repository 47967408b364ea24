//! `NetError`: everything that can go wrong between a prototxt file and a checked `NetSpec`.
//! Its `Display` is the one-line message a user sees; syntax errors also carry a source excerpt.

use std::path::PathBuf;

/// An error reading, upgrading or checking a net or solver definition.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The file could not be read.
    /// (The cause is part of the one-line message, not a separate `source()`, so a binary
    /// printing the error chain does not repeat it.)
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The text is not valid protobuf text format for the expected message (syntax error,
    /// unknown field, unknown enum value, value out of range...).
    #[error("{origin}:{line}:{col}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        col: usize,
        message: String,
        /// The offending line with a caret under the position, ready to print.
        excerpt: String,
    },
    /// The net or solver could not be brought to the current (V2) form.
    #[error("{0}")]
    Upgrade(String),
    /// A layer type that siamese has no shape rule for.
    #[error("layer '{layer}': unknown layer type '{kind}'; supported types: {}", supported.join(", "))]
    UnknownLayerType {
        layer: String,
        kind: String,
        supported: Vec<&'static str>,
    },
    /// A bottom blob that no earlier layer of this phase produces.
    #[error(
        "layer '{layer}': bottom '{bottom}' is not produced by any earlier layer in the {phase} phase (available: {})",
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    MissingBottom {
        layer: String,
        bottom: String,
        phase: String,
        available: Vec<String>,
    },
    /// Two layers produce a blob of the same name (and it is not an in-place layer).
    #[error("layer '{layer}': top '{top}' is already produced by layer '{first}'")]
    DuplicateTop {
        layer: String,
        top: String,
        first: String,
    },
    /// A parameter shared by name whose shapes differ between the layers that share it.
    #[error(
        "shared parameter '{name}': layer '{owner}' has shape {owner_shape:?} but layer '{layer}' needs {shape:?}"
    )]
    SharedParamMismatch {
        name: String,
        owner: String,
        owner_shape: Vec<usize>,
        layer: String,
        shape: Vec<usize>,
    },
    /// A layer whose parameters or input shapes do not fit its rule.
    #[error("layer '{layer}' ({kind}): {message}")]
    Layer {
        layer: String,
        kind: String,
        message: String,
    },
    /// A net-level rule broken (e.g. both `layer` and `layers`).
    #[error("{0}")]
    Invalid(String),
}

impl NetError {
    /// For syntax errors, the offending line with a caret under the position.
    pub fn excerpt(&self) -> Option<&str> {
        match self {
            NetError::Syntax { excerpt, .. } => Some(excerpt),
            _ => None,
        }
    }

    pub(crate) fn layer(layer: &str, kind: &str, message: impl Into<String>) -> Self {
        NetError::Layer {
            layer: layer.to_string(),
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}
