//! Claims: an OS file lock on `<cell>/claim.lock`, held while a runner trains the cell, so any
//! number of runners sharing one runs folder (processes, machines, Slurm tasks) split the cells.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// The lock file in a cell's folder. Its content is meaningless; the lock is what counts.
pub const CLAIM_FILE: &str = "claim.lock";
/// The lock that makes rewriting summary.csv one runner at a time.
pub const SUMMARY_LOCK_FILE: &str = "summary.lock";

/// A held claim; dropping it (or the process ending in any way, a kill included) frees it,
/// because the kernel drops a dead process's locks.
#[derive(Debug)]
pub struct Claim {
    _file: File,
    path: PathBuf,
}

impl Claim {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Claims the cell in `dir` (created if missing): `None` when another open of the lock file,
/// in this process or any other, holds it.
pub fn try_claim(dir: &Path) -> io::Result<Option<Claim>> {
    fs::create_dir_all(dir)?;
    let path = dir.join(CLAIM_FILE);
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Claim { _file: file, path })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Waits for the lock `name` in `dir`, for work that must be done by one runner at a time.
pub fn lock(dir: &Path, name: &str) -> io::Result<Claim> {
    let path = dir.join(name);
    let file = open_lock_file(&path)?;
    file.lock()?;
    Ok(Claim { _file: file, path })
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_excludes_every_other_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("000-margin_1");
        let first = try_claim(&cell).unwrap().expect("a free cell is claimed");
        assert_eq!(first.path(), cell.join(CLAIM_FILE));
        assert!(try_claim(&cell).unwrap().is_none(), "claimed twice");
        drop(first);
        assert!(
            try_claim(&cell).unwrap().is_some(),
            "a dropped claim stays held"
        );
    }

    #[test]
    fn claims_of_other_cells_are_independent() {
        let dir = tempfile::tempdir().unwrap();
        let _a = try_claim(&dir.path().join("a")).unwrap().unwrap();
        assert!(try_claim(&dir.path().join("b")).unwrap().is_some());
    }

    #[test]
    fn a_claim_in_a_folder_that_cannot_be_made_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        fs::write(&file, "x").unwrap();
        assert!(try_claim(&file.join("cell")).is_err());
    }
}
