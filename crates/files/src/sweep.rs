//! The sweep of temporary files and folders left by atomic writes cut short by a kill: only
//! names [`TempName`] makes, on this host, whose process is gone (or is an earlier namesake).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic::in_flight;
use crate::{FileError, TempName};

/// Removes from `dir` the temporary files and folders of atomic writes whose writer is gone:
/// made on this host by a process that no longer runs, or by this process's pid but not
/// being written now (an earlier process had our pid). Every other entry stays, including
/// other hosts' writes in a shared folder. Returns the removed paths, sorted; a missing `dir`
/// has none.
pub fn remove_stale_temp_files(dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    const ACTION: &str = "cannot sweep stale temporary files";
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FileError::new(dir, ACTION, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FileError::new(dir, ACTION, e))?;
        let Some(name) = entry.file_name().to_str().and_then(TempName::parse) else {
            continue;
        };
        let path = entry.path();
        if !is_stale(&name, &path) {
            continue;
        }
        let result = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => removed.push(path),
            // Another sweeper got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(FileError::new(
                    path,
                    "cannot remove a stale temporary file",
                    e,
                ));
            }
        }
    }
    removed.sort();
    Ok(removed)
}

fn is_stale(name: &TempName, path: &Path) -> bool {
    if !name.is_from_this_host() {
        return false;
    }
    if name.pid == std::process::id() {
        return !in_flight().contains(path);
    }
    !process_may_be_running(name.pid)
}

/// Whether process `pid` may be running on this host (signal 0; a process of another user
/// counts as running). Where that cannot be checked, it may.
pub fn process_may_be_running(pid: u32) -> bool {
    #[cfg(unix)]
    {
        use rustix::process::{Pid, test_kill_process};
        let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return false;
        };
        !matches!(test_kill_process(pid), Err(rustix::io::Errno::SRCH))
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AtomicFile;

    fn gone_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn name(target: &str, pid: u32, host: u32) -> String {
        let mut t = TempName::fresh(target);
        t.pid = pid;
        t.host = host;
        t.file_name()
    }

    /// Only our names, made on this host by a writer that is gone, are removed.
    #[test]
    fn stale_temporaries_go_and_everything_else_stays() {
        let dir = tempfile::tempdir().unwrap();
        let here = TempName::fresh("x").host;
        let (gone, me) = (gone_pid(), std::process::id());
        let stale_file = name("w_iter_5.caffemodel", gone, here);
        let stale_dir = name("pairs_leveldb", gone, here);
        let earlier_namesake = name("log.csv", me, here);
        let kept = [
            name("w_iter_5.solverstate", 1, here), // pid 1 runs: maybe writing
            name("status.toml", gone, here ^ 1),   // another host's write
            ".w_iter_5.caffemodel.tmp4242".to_string(),
            "w_iter_5.caffemodel".to_string(),
            "notes.part".to_string(),
        ];
        for n in [&stale_file, &earlier_namesake].into_iter().chain(&kept) {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        fs::create_dir(dir.path().join(&stale_dir)).unwrap();
        fs::write(dir.path().join(&stale_dir).join("LOG"), b"x").unwrap();
        let writing = AtomicFile::new(&dir.path().join("features.csv")).unwrap();
        fs::write(writing.temp_path(), b"being written").unwrap();

        let removed = remove_stale_temp_files(dir.path()).unwrap();
        let mut expect: Vec<PathBuf> = [&stale_file, &stale_dir, &earlier_namesake]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        expect.sort();
        assert_eq!(removed, expect);
        for n in &kept {
            assert!(dir.path().join(n).exists(), "{n} was removed");
        }
        assert!(writing.temp_path().exists());
    }

    #[test]
    fn a_missing_folder_has_nothing_to_sweep() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            remove_stale_temp_files(&dir.path().join("none"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn this_process_runs_and_a_reaped_child_does_not() {
        assert!(process_may_be_running(std::process::id()));
        assert!(!process_may_be_running(gone_pid()));
    }
}
