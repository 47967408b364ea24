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
    /// A layer setting out of the range Caffe gives it meaning; `field` is its path inside the
    /// layer (`convolution_param.stride`), so [`NetError::in_file`] can say where it is.
    #[error("layer '{layer}' ({kind}): {message}")]
    LayerField {
        layer: String,
        kind: String,
        field: &'static str,
        message: String,
    },
    /// An error placed in its file: `file:line:col: error`.
    #[error("{origin}:{line}:{col}: {error}")]
    At {
        origin: String,
        line: usize,
        col: usize,
        error: Box<NetError>,
    },
    /// A path that exists but is not what was asked for (a folder where a file is expected).
    #[error("{}: {found}, expected {expected}", path.display())]
    WrongKind {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
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

    /// Places a [`NetError::LayerField`] at its line in `path`, the net file the layer was read
    /// from (left as it is when the file does not write that layer).
    pub fn in_file(self, path: &std::path::Path) -> NetError {
        let NetError::LayerField { layer, field, .. } = &self else {
            return self;
        };
        match crate::locate::in_file(path, |text| crate::locate::layer_field(text, layer, field)) {
            Some(at) => NetError::At {
                origin: path.display().to_string(),
                line: at.line,
                col: at.col,
                error: Box::new(self),
            },
            None => self,
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
