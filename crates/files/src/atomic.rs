//! Atomic writes: the new file or folder is made under a temporary name beside the target,
//! synced, renamed over it and the folder synced, so a reader sees the old one or the whole new one.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::{FileError, TempName};

/// Writes `bytes` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes what `write` produces to `path` atomically, through a buffered writer.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), FileError> {
    let file = AtomicFile::new(path)?;
    let written = File::create(file.temp_path()).and_then(|f| {
        let mut out = BufWriter::new(f);
        write(&mut out)?;
        out.flush()
    });
    written.map_err(|e| FileError::new(path, "cannot write", e))?;
    file.commit()
}

/// A file being written under a temporary name in the target's folder. Write the temporary
/// path by any means (plotters and Graphviz take a path), then [`AtomicFile::commit`]; dropped
/// uncommitted (an error, a panic), the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
}

impl AtomicFile {
    /// Plans a write of `target`; creates nothing yet.
    pub fn new(target: &Path) -> Result<AtomicFile, FileError> {
        let temp = temp_beside(target)?;
        in_flight().insert(temp.clone());
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temp,
        })
    }

    /// Where to write: `.<name>.tmp-<pid>-<host>-<nonce>[.<extension>]` beside the target.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the temporary file, renames it over the target and syncs the folder.
    pub fn commit(self) -> Result<(), FileError> {
        let err = |e| FileError::new(&self.target, "cannot write", e);
        File::open(&self.temp)
            .and_then(|f| f.sync_all())
            .map_err(err)?;
        fs::rename(&self.temp, &self.target).map_err(err)?;
        sync_folder(&self.target);
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After a commit the temporary name no longer exists; otherwise this cleans up.
        let _ = fs::remove_file(&self.temp);
        in_flight().remove(&self.temp);
    }
}

/// A folder (a database) built under a temporary name beside the target, then renamed into
/// place by [`AtomicDir::commit`]; dropped uncommitted, the folder and its contents are removed.
#[derive(Debug)]
pub struct AtomicDir {
    target: PathBuf,
    temp: PathBuf,
}

impl AtomicDir {
    /// Creates the empty temporary folder.
    pub fn new(target: &Path) -> Result<AtomicDir, FileError> {
        let temp = temp_beside(target)?;
        in_flight().insert(temp.clone());
        let dir = AtomicDir {
            target: target.to_path_buf(),
            temp,
        };
        fs::create_dir(&dir.temp).map_err(|e| FileError::new(target, "cannot create", e))?;
        Ok(dir)
    }

    /// The folder to fill.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Syncs the files in the folder and the folder, renames it to the target (which must not
    /// exist, or be an empty folder) and syncs the parent.
    pub fn commit(self) -> Result<(), FileError> {
        let err = |e| FileError::new(&self.target, "cannot write", e);
        for entry in fs::read_dir(&self.temp).map_err(err)? {
            let path = entry.map_err(err)?.path();
            if path.is_file() {
                File::open(&path).and_then(|f| f.sync_all()).map_err(err)?;
            }
        }
        sync_folder(&self.temp.join("x"));
        fs::rename(&self.temp, &self.target).map_err(err)?;
        sync_folder(&self.target);
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.temp);
        in_flight().remove(&self.temp);
    }
}

/// The temporary path for a write of `target`, in the same folder (so the rename is atomic).
fn temp_beside(target: &Path) -> Result<PathBuf, FileError> {
    let name = target.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        FileError::new(
            target,
            "cannot write",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "expected a file path ending in a UTF-8 file name",
            ),
        )
    })?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok(dir.join(TempName::fresh(name).file_name()))
}

/// Makes a rename in the folder of `path` durable. Not every platform can open a folder to
/// sync it; the rename itself is atomic either way.
fn sync_folder(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Temporary paths this process is writing now: the sweeper leaves them alone.
pub(crate) fn in_flight() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    static IN_FLIGHT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.caffemodel");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["w.caffemodel"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.csv");
        write_atomic(&path, b"a,b\n").unwrap();
        let e = write_atomic_with(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("the disk is full"))
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: cannot write: the disk is full", path.display())
        );
        assert_eq!(fs::read(&path).unwrap(), b"a,b\n");
        assert_eq!(names(dir.path()), ["summary.csv"]);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/folder/x.csv");
        let e = write_atomic(&path, b"x").unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: cannot write: ", path.display())),
            "{e}"
        );
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn an_uncommitted_file_is_removed_and_its_name_keeps_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scatter.png");
        let file = AtomicFile::new(&path).unwrap();
        let temp = file.temp_path().to_path_buf();
        assert_eq!(temp.extension().unwrap(), "png");
        assert_eq!(temp.parent(), Some(dir.path()));
        fs::write(&temp, b"partial").unwrap();
        drop(file);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_folder_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("pairs_leveldb");
        let db = AtomicDir::new(&target).unwrap();
        fs::write(db.temp_path().join("CURRENT"), b"MANIFEST-1\n").unwrap();
        assert!(!target.exists());
        db.commit().unwrap();
        assert_eq!(fs::read(target.join("CURRENT")).unwrap(), b"MANIFEST-1\n");
        assert_eq!(names(dir.path()), ["pairs_leveldb"]);

        let abandoned = AtomicDir::new(&dir.path().join("other_leveldb")).unwrap();
        fs::write(abandoned.temp_path().join("LOG"), b"x").unwrap();
        drop(abandoned);
        assert_eq!(names(dir.path()), ["pairs_leveldb"]);
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        let e = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
