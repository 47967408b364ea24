//! `LayerError`: what can go wrong building, shaping and running layers and nets, and reading
//! or writing weights; every message names the layer or file and what was expected.

/// Errors of siamese-layers.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A layer's parameters make no sense (`num_output: 0`, an unknown pooling method...).
    #[error("layer \"{layer}\": {message}")]
    Config { layer: String, message: String },
    /// Bottom blobs whose shapes the layer cannot work with.
    #[error("layer \"{layer}\": {message}")]
    Shape { layer: String, message: String },
    /// A weights file that does not fit the net, or is not a NetParameter.
    #[error("{path}: {message}")]
    Weights { path: String, message: String },
    /// A Data layer's database could not be read.
    /// (Causes are part of the one-line messages here, not a separate `source()`, so a binary
    /// printing the error chain does not repeat them.)
    #[error("layer \"{layer}\": {error}")]
    Data {
        layer: String,
        error: siamese_data::DataError,
    },
    /// The net definition (or a V1 weights file) could not be turned into a net.
    #[error(transparent)]
    Net(#[from] siamese_net::NetError),
    /// Reading or writing a file.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A file that could not be written.
    #[error(transparent)]
    File(#[from] siamese_files::FileError),
    /// A GPU cannot be used or a device call failed (one line saying which and why).
    #[error("GPU: {message}")]
    Device { message: String },
}

impl LayerError {
    pub(crate) fn config(layer: &str, message: impl Into<String>) -> Self {
        Self::Config {
            layer: layer.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn device(message: impl Into<String>) -> Self {
        Self::Device {
            message: message.into(),
        }
    }

    pub(crate) fn shape(layer: &str, message: impl Into<String>) -> Self {
        Self::Shape {
            layer: layer.to_string(),
            message: message.into(),
        }
    }
}
