//! The report's error type: a run-record file that cannot be read or written, or whose
//! content is not a training log or features CSV.

use std::path::PathBuf;

/// A training log or features CSV that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file that could not be read or written.
    /// (The cause is part of the one-line message, not a separate `source()`, so a binary
    /// printing the error chain does not repeat it.)
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file whose content is not what was expected.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

impl ReportError {
    pub(crate) fn format(path: &std::path::Path, message: impl Into<String>) -> ReportError {
        ReportError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
