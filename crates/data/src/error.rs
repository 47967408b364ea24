//! The one error type of siamese-data: every variant names the file (or buffer) at fault and
//! what was expected there, so a binary can print it as a single line.

use std::path::PathBuf;

/// Everything that can go wrong reading IDX files, building pairs or touching a Datum database.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read, write, rename or directory listing.
    /// (The cause is part of the one-line message, not a separate `source()`.)
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file starts like gzip (1f 8b) but does not decompress.
    #[error("{}: bad gzip data ({reason}), expected a gzip-compressed IDX file", path.display())]
    Gzip { path: PathBuf, reason: String },
    /// The IDX magic number is not the one for this kind of file.
    #[error("{}: magic {found}, expected {expected} ({what})", path.display())]
    Magic {
        path: PathBuf,
        found: u32,
        expected: u32,
        what: &'static str,
    },
    /// The header is readable but describes something impossible (zero-sized images...).
    #[error("{}: {problem}, expected {expected}", path.display())]
    Header {
        path: PathBuf,
        problem: String,
        expected: String,
    },
    /// The file is shorter or longer than its header says.
    #[error("{}: {found} bytes, expected {expected} ({what})", path.display())]
    Size {
        path: PathBuf,
        found: u64,
        expected: u64,
        what: String,
    },
    /// Images and labels files of one dataset disagree on the number of items.
    #[error(
        "{}: {labels} labels, expected {images} (the image count of {})",
        labels_path.display(),
        images_path.display()
    )]
    CountMismatch {
        images_path: PathBuf,
        labels_path: PathBuf,
        images: usize,
        labels: usize,
    },
    /// Pair options that cannot produce pairs for this dataset.
    #[error("pair options: {0}")]
    PairOptions(String),
    /// An output that exists already, with `force` off.
    #[error("{}: already exists, expected a new path (force/--force replaces it)", path.display())]
    Exists { path: PathBuf },
    /// LevelDB itself failed (or panicked) opening, reading or writing the database.
    #[error("{}: LevelDB: {reason}", path.display())]
    Db { path: PathBuf, reason: String },
    /// An LMDB folder that is not one or is damaged (the place is named: a page, the key
    /// before it), or the C library failed writing one.
    #[error("{}: LMDB: {reason}", path.display())]
    Lmdb { path: PathBuf, reason: String },
    /// A record of the database is not a usable Caffe Datum.
    #[error("{}: record {key:?}: {problem}, expected {expected}", path.display())]
    Record {
        path: PathBuf,
        key: String,
        problem: String,
        expected: String,
    },
    /// The database holds no records.
    #[error("{}: no records, expected at least one Datum", path.display())]
    Empty { path: PathBuf },
    /// An image file (or a folder or list of them) that cannot be used as a net's input.
    #[error("{}: {problem}", path.display())]
    Image { path: PathBuf, problem: String },
    /// Memory for a database's records that the allocator refused.
    #[error("{}: out of memory: cannot allocate {bytes} bytes for {records} records", path.display())]
    OutOfMemory {
        path: PathBuf,
        records: usize,
        bytes: usize,
    },
    /// Buffers handed to `BatchReader::next_batch` that do not fit the batch.
    #[error("batch buffers: {problem}, expected {expected}")]
    Buffers { problem: String, expected: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> DataError {
        // Keep only the OS's words: some wrappers (tempfile) append their own path.
        let error = match error.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => error,
        };
        DataError::Io {
            path: path.into(),
            error,
        }
    }
}
