//! The solver's error type: bad settings, unreadable or malformed files, a loss that is no
//! longer finite, and errors of the net it drives.

use std::path::PathBuf;

/// Everything that can stop a solver.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// A solver setting Caffe would reject.
    #[error("{message}")]
    Setting { message: String },
    /// A setting out of the range Caffe gives it meaning: the `index`-th `field` of the file.
    #[error("{message}")]
    Field {
        field: &'static str,
        index: usize,
        message: String,
    },
    /// A setting error placed in its file: `file:line:col: message`.
    #[error("{}:{line}:{col}: {message}", path.display())]
    At {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    /// A file that could not be read or written.
    /// (The cause is part of the one-line message, not a separate `source()`, so a binary
    /// printing the error chain does not repeat it.)
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file that could not be written (atomically) or a stale temporary file not removed.
    #[error(transparent)]
    File(#[from] siamese_files::FileError),
    /// A file whose content is not what was expected.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    /// The training loss became NaN or infinite.
    #[error("loss is {loss} at iteration {iter}; last snapshot: {}", last_snapshot.as_ref().map_or("none".to_string(), |p| p.display().to_string()))]
    NonFiniteLoss {
        iter: i32,
        loss: f32,
        last_snapshot: Option<PathBuf>,
    },
    /// A net definition that cannot be read or built.
    #[error(transparent)]
    Net(Box<siamese_net::NetError>),
    /// The GPU asked for cannot be used (the reason says why).
    #[error("GPU: {0}")]
    Device(#[from] siamese_layers::DeviceError),
    /// Training would need more memory than this process may use (checked before building
    /// the nets); `path` is the net file, or the solver file when the net is inline.
    #[error("{}{error}", path.as_ref().map_or(String::new(), |p| format!("{}: ", p.display())))]
    Memory {
        path: Option<PathBuf>,
        error: Box<siamese_layers::MemoryError>,
    },
    /// A net that fails while running or loading weights.
    #[error(transparent)]
    Layer(Box<siamese_layers::LayerError>),
}

impl SolverError {
    /// Names the file a setting error came from, and for a field its line there.
    pub fn in_file(self, path: &std::path::Path) -> SolverError {
        use siamese_net::locate;
        match self {
            SolverError::Field {
                field,
                index,
                message,
            } => match locate::in_file(path, |t| locate::top_level_field(t, field, index)) {
                Some(at) => SolverError::At {
                    path: path.to_path_buf(),
                    line: at.line,
                    col: at.col,
                    message,
                },
                None => SolverError::Format {
                    path: path.to_path_buf(),
                    message,
                },
            },
            SolverError::Setting { message } => SolverError::Format {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        }
    }
}

impl From<siamese_net::NetError> for SolverError {
    fn from(e: siamese_net::NetError) -> SolverError {
        SolverError::Net(Box::new(e))
    }
}

impl From<siamese_layers::LayerError> for SolverError {
    fn from(e: siamese_layers::LayerError) -> SolverError {
        SolverError::Layer(Box::new(e))
    }
}
