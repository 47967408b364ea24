//! Snapshot files: `<prefix>_iter_N.caffemodel` and `<prefix>_iter_N.solverstate` in Caffe's
//! binary formats, written atomically (temp file in the same folder, fsync, rename).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use siamese_proto::{BlobProto, BlobShape, Message, SolverState};

use crate::SolverError;

/// `<prefix>_iter_<iter><extension>`, Caffe's `Solver::SnapshotFilename`.
pub fn snapshot_path(prefix: &str, iter: i32, extension: &str) -> PathBuf {
    PathBuf::from(format!("{prefix}_iter_{iter}{extension}"))
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one:
/// a temporary file beside it, fsync, rename, then fsync of the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SolverError> {
    let io = |source| SolverError::Io {
        path: path.to_path_buf(),
        error: source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| SolverError::Setting {
        message: format!("{}: not a file path", path.display()),
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the folder is synced; not every platform allows that.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// The process id in the name of a temporary file [`write_atomically`] (or siamese-layers'
/// `write_atomic`) creates, `.<name>.tmp<pid>`; `None` for any other name.
pub fn temp_file_pid(file_name: &str) -> Option<u32> {
    let (target, pid) = file_name.strip_prefix('.')?.rsplit_once(".tmp")?;
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (!target.is_empty() && digits).then(|| pid.parse().ok())?
}

/// Whether the process `pid` may still be writing the temporary file it named: it is running
/// on this machine and it is not this process (an earlier process with our id is gone).
pub fn writer_may_be_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    process_is_running(pid)
}

#[cfg(unix)]
fn process_is_running(pid: u32) -> bool {
    use rustix::process::{Pid, test_kill_process};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    // Signal 0 checks only; EPERM means it runs under another user.
    !matches!(test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}

#[cfg(not(unix))]
fn process_is_running(_: u32) -> bool {
    // No portable check: assume it runs, so nothing another process writes is removed.
    true
}

/// Removes from `dir` the temporary files of atomic writes cut short by a kill: plain files
/// named `.<name>.tmp<pid>` whose process is no longer running (see [`writer_may_be_running`]).
/// Any other file is left alone. Returns the removed paths; a missing `dir` has none.
pub fn remove_stale_temp_files(dir: &Path) -> Result<Vec<PathBuf>, SolverError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| SolverError::Io { path, error }
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let stale = entry.file_name().to_str().and_then(temp_file_pid);
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if let Some(pid) = stale
            && is_file
            && !writer_may_be_running(pid)
        {
            let path = entry.path();
            fs::remove_file(&path).map_err(io(&path))?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// A history buffer as Caffe's `Blob::ToProto` writes it (shape + float data).
pub fn blob_to_proto(shape: &[usize], data: &[f32]) -> BlobProto {
    BlobProto {
        shape: Some(BlobShape {
            dim: shape.iter().map(|&d| d as i64).collect(),
        }),
        data: data.to_vec(),
        ..Default::default()
    }
}

/// Encodes and writes a `SolverState`.
pub fn write_solver_state(path: &Path, state: &SolverState) -> Result<(), SolverError> {
    write_atomically(path, &state.encode_to_vec())
}

/// Reads a `.solverstate` file.
pub fn read_solver_state(path: &Path) -> Result<SolverState, SolverError> {
    let bytes = fs::read(path).map_err(|source| SolverError::Io {
        path: path.to_path_buf(),
        error: source,
    })?;
    SolverState::decode(bytes.as_slice()).map_err(|e| SolverError::Format {
        path: path.to_path_buf(),
        message: format!("not a Caffe SolverState ({e})"),
    })
}

/// Copies history blobs out of a state, checking their number and sizes against `expected`
/// element counts, like Caffe's `CHECK_EQ(state.history_size(), history_.size())`.
pub fn history_from_state(
    path: &Path,
    state: &SolverState,
    expected: &[usize],
) -> Result<Vec<Vec<f32>>, SolverError> {
    let format = |message| SolverError::Format {
        path: path.to_path_buf(),
        message,
    };
    if state.history.len() != expected.len() {
        return Err(format(format!(
            "{} history blobs, expected {} for this net and solver type",
            state.history.len(),
            expected.len()
        )));
    }
    state
        .history
        .iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (blob, &n))| {
            let data = if blob.data.is_empty() && !blob.double_data.is_empty() {
                blob.double_data.iter().map(|&d| d as f32).collect()
            } else {
                blob.data.clone()
            };
            if data.len() != n {
                return Err(format(format!(
                    "history blob {i} has {} values, expected {n}",
                    data.len()
                )));
            }
            Ok(data)
        })
        .collect()
}

/// Where `learned_net` points: as written when that path exists (Caffe reads it relative
/// to the working folder), else the same file name beside the solverstate, so a moved
/// snapshot folder still resumes.
pub fn learned_net_path(solverstate: &Path, learned_net: &str) -> PathBuf {
    let direct = PathBuf::from(learned_net);
    if direct.exists() {
        return direct;
    }
    match (solverstate.parent(), direct.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => direct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_caffe() {
        assert_eq!(
            snapshot_path("examples/siamese/mnist_siamese", 5000, ".caffemodel"),
            PathBuf::from("examples/siamese/mnist_siamese_iter_5000.caffemodel")
        );
    }

    #[test]
    fn solver_state_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s_iter_7.solverstate");
        let state = SolverState {
            iter: Some(7),
            learned_net: Some("s_iter_7.caffemodel".into()),
            history: vec![
                blob_to_proto(&[2, 1], &[0.5, -1.0]),
                blob_to_proto(&[3], &[1.0, 2.0, 3.0]),
            ],
            current_step: Some(2),
        };
        write_solver_state(&path, &state).unwrap();
        let back = read_solver_state(&path).unwrap();
        assert_eq!(back, state);
        let h = history_from_state(&path, &back, &[2, 3]).unwrap();
        assert_eq!(h, vec![vec![0.5, -1.0], vec![1.0, 2.0, 3.0]]);
        let e = history_from_state(&path, &back, &[2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 history blobs, expected 1"), "{e}");
        let e = history_from_state(&path, &back, &[2, 4])
            .unwrap_err()
            .to_string();
        assert!(e.contains("history blob 1 has 3 values, expected 4"), "{e}");
        // no temp file is left behind
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("s_iter_7.solverstate")]
        );
    }

    #[test]
    fn temp_file_names_are_recognised_exactly() {
        let check =
            |name: &str, expect: Option<u32>| assert_eq!(temp_file_pid(name), expect, "{name}");
        check(".s_iter_4.caffemodel.tmp4242", Some(4242));
        check(".s_iter_4.solverstate.tmp7", Some(7));
        check("s_iter_4.caffemodel.tmp4242", None); // no leading dot: not ours
        check(".s_iter_4.caffemodel.tmp", None);
        check(".s_iter_4.caffemodel.tmp42x", None);
        check(".tmp42", None);
        check(".notes.tmp.txt", None);
        check("s_iter_4.caffemodel", None);
    }

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its id is not running any more (nor reused so soon).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let ours = std::process::id();
        let names = [
            format!(".s_iter_4.caffemodel.tmp{gone}"),
            format!(".s_iter_4.solverstate.tmp{ours}"),
            ".s_iter_6.caffemodel.tmp1".to_string(), // pid 1 (init) runs: maybe writing
            format!("s_iter_4.caffemodel.tmp{gone}"),
            "s_iter_4.caffemodel".to_string(),
            ".hidden".to_string(),
            "notes.txt".to_string(),
        ];
        for name in &names {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::create_dir(dir.path().join(format!(".folder.tmp{gone}"))).unwrap();
        let removed = remove_stale_temp_files(dir.path()).unwrap();
        assert_eq!(
            removed,
            vec![dir.path().join(&names[0]), dir.path().join(&names[1])]
        );
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expect: Vec<_> = names[2..].to_vec();
        expect.push(format!(".folder.tmp{gone}"));
        expect.sort();
        assert_eq!(left, expect);
        assert_eq!(
            remove_stale_temp_files(&dir.path().join("missing")).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn garbage_is_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.solverstate");
        fs::write(&path, [0xff, 0xff, 0xff]).unwrap();
        let e = read_solver_state(&path).unwrap_err().to_string();
        assert!(
            e.contains("bad.solverstate") && e.contains("not a Caffe SolverState"),
            "{e}"
        );
    }

    #[test]
    fn atomic_write_into_a_missing_folder_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("x.caffemodel");
        let e = write_atomically(&path, b"abc").unwrap_err().to_string();
        assert!(e.contains("x.caffemodel"), "{e}");
    }

    #[test]
    fn learned_net_falls_back_to_the_solverstate_folder() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m_iter_1.caffemodel");
        fs::write(&model, b"").unwrap();
        let state = dir.path().join("m_iter_1.solverstate");
        assert_eq!(
            learned_net_path(&state, "moved/away/m_iter_1.caffemodel"),
            model
        );
    }
}
