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
    /// A GPU cannot be used or a device call failed (its own message says GPU).
    #[error("GPU: {0}")]
    Device(#[from] DeviceError),
    /// A buffer of a layer that the allocator refused (the net's memory plan let it through).
    #[error("layer \"{layer}\": out of memory: {error}")]
    Alloc {
        layer: String,
        error: crate::blob::AllocError,
    },
    /// The net would need more memory than this process may use (checked before allocating).
    #[error(transparent)]
    Memory(Box<crate::memory::MemoryError>),
    /// A layer's device code failed, or the layer has none.
    #[error("GPU: layer \"{layer}\": {error}")]
    LayerDevice { layer: String, error: DeviceError },
}

/// Why a GPU cannot be used, or what a device call met. The message is the reason alone;
/// whoever shows it beside other errors says "GPU" (as [`LayerError::Device`] does).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Not `cpu`, `gpu` or `gpu:N`.
    #[error("device \"{0}\": expected cpu, gpu or gpu:N (N a GPU ordinal)")]
    BadName(String),
    /// This build has no CUDA code at all.
    #[error("this siamese was built without CUDA support; rebuild with `--features cuda`")]
    NotBuilt,
    /// A CUDA library that cannot be loaded (cudarc would panic on the first call into it).
    #[error(
        "{0} cannot be loaded: install the NVIDIA driver and CUDA 13 runtime libraries, or add \
         their directory (e.g. /usr/local/cuda/lib64) to LD_LIBRARY_PATH"
    )]
    MissingLibrary(&'static str),
    /// An ordinal past the visible devices.
    #[error("no GPU {ordinal}: {count} CUDA device(s) visible (ordinals 0..{count})")]
    NoSuchGpu { ordinal: usize, count: i32 },
    /// A layer type without CUDA code (the default of its `CudaLayer` implementation).
    #[error("{kind} has no CUDA implementation; run it with --device cpu")]
    Unsupported { kind: &'static str },
    /// A CUDA call (driver, NVRTC, cuBLAS, a launch) failed while doing `what`.
    #[error("{what}: {detail}")]
    Call { what: String, detail: String },
    /// A size the kernels' `int` indices cannot hold.
    #[error("size {0} exceeds 2^31 - 1")]
    TooLarge(usize),
    /// Anything else that stops device work (a poisoned lock, buffers that do not fit).
    #[error("{0}")]
    Failed(String),
}

/// A layer's refused buffer; the net names the layer (see [`LayerError::in_layer_named`]).
impl From<crate::blob::AllocError> for LayerError {
    fn from(error: crate::blob::AllocError) -> Self {
        Self::Alloc {
            layer: String::new(),
            error,
        }
    }
}

impl From<crate::memory::MemoryError> for LayerError {
    fn from(error: crate::memory::MemoryError) -> Self {
        Self::Memory(Box::new(error))
    }
}

impl LayerError {
    /// Names `layer` in an allocation error that does not name one yet.
    pub(crate) fn in_layer_named(self, layer: &str) -> Self {
        match self {
            Self::Alloc { layer: l, error } if l.is_empty() => Self::Alloc {
                layer: layer.to_string(),
                error,
            },
            other => other,
        }
    }

    pub(crate) fn config(layer: &str, message: impl Into<String>) -> Self {
        Self::Config {
            layer: layer.to_string(),
            message: message.into(),
        }
    }

    /// A device error met running layer `layer`.
    #[cfg(feature = "cuda")]
    pub(crate) fn in_layer(layer: &str, error: DeviceError) -> Self {
        Self::LayerDevice {
            layer: layer.to_string(),
            error,
        }
    }

    pub(crate) fn shape(layer: &str, message: impl Into<String>) -> Self {
        Self::Shape {
            layer: layer.to_string(),
            message: message.into(),
        }
    }
}
