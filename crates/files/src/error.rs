//! `FileError`: a file siamese could not write or clean up, named by the file the user asked
//! for (not its temporary name), with the operating system's reason.

use std::path::PathBuf;

/// Writing, renaming or sweeping a file failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {action}: {error}", path.display())]
pub struct FileError {
    /// The file the user asked for (for a sweep: the folder or the file it could not remove).
    pub path: PathBuf,
    /// What was being done: "cannot write", "cannot remove a stale temporary file", ...
    pub action: &'static str,
    pub error: std::io::Error,
}

impl FileError {
    pub(crate) fn new(
        path: impl Into<PathBuf>,
        action: &'static str,
        error: std::io::Error,
    ) -> Self {
        Self {
            path: path.into(),
            action,
            error,
        }
    }

    /// The operating system's error kind (e.g. `StorageFull` for a full disk).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.error.kind()
    }
}
