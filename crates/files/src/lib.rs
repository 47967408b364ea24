//! siamese-files: the one way siamese writes a file for a user (temp file beside it, fsync,
//! rename, fsync of the folder) and the one sweeper of the temp files a kill leaves behind.
//!
//! ```no_run
//! siamese_files::write_atomic(std::path::Path::new("runs/w.caffemodel"), b"bytes")?;
//! let removed = siamese_files::remove_stale_temp_files(std::path::Path::new("runs"))?;
//! # Ok::<(), siamese_files::FileError>(())
//! ```

mod atomic;
mod error;
mod kind;
mod sweep;
mod temp_name;

pub use atomic::{AtomicDir, AtomicFile, write_atomic, write_atomic_with};
pub use error::FileError;
pub use kind::{not_a_file, not_a_folder};
pub use sweep::{process_may_be_running, remove_stale_temp_files};
pub use temp_name::{TempName, is_temp_name};
