//! Snapshot files: `<prefix>_iter_N.caffemodel` and `<prefix>_iter_N.solverstate` in Caffe's
//! binary formats, written atomically through siamese-files.

use std::fs;
use std::path::{Path, PathBuf};

use siamese_proto::{BlobProto, BlobShape, Message, SolverState};

use crate::SolverError;

/// `<prefix>_iter_<iter><extension>`, Caffe's `Solver::SnapshotFilename`.
pub fn snapshot_path(prefix: &str, iter: i32, extension: &str) -> PathBuf {
    PathBuf::from(format!("{prefix}_iter_{iter}{extension}"))
}

/// Writes `bytes` to `path` atomically (siamese-files: temp file beside it, fsync, rename,
/// fsync of the folder).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SolverError> {
    Ok(siamese_files::write_atomic(path, bytes)?)
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
