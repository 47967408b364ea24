//! One cell's folder, `runs/<experiment>/<cell>/`: params.toml, log.csv (`cell_log`),
//! features.csv, the trainer's snapshots and model, and done.toml (the cell is finished).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use siamese_report::{LabelledFeatures, LogRow, features_csv, parse_log_lines};
use siamese_solver::snapshot::{temp_file_pid, writer_may_be_running};

use crate::cell_log::LOG_FILE;
use crate::cell_trainer::{CellSummary, Resume};
use crate::cells::{Cell, CellParams};
use crate::experiment::Experiment;

pub const PARAMS_FILE: &str = "params.toml";
pub const FEATURES_FILE: &str = "features.csv";
pub const DONE_FILE: &str = "done.toml";

#[derive(Serialize)]
struct ParamsFile<'a> {
    experiment: &'a str,
    cell: &'a str,
    solver: &'a Path,
    net: &'a Path,
    data: &'a Path,
    iterations: u32,
    test_interval: u32,
    snapshot_interval: u32,
    params: &'a CellParams,
}

/// The folder of one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellFolder {
    pub dir: PathBuf,
}

impl CellFolder {
    pub fn new(dir: PathBuf) -> CellFolder {
        CellFolder { dir }
    }

    /// The summary of a finished cell; `None` when done.toml is absent or unreadable.
    pub fn done(&self) -> Option<CellSummary> {
        let text = fs::read_to_string(self.dir.join(DONE_FILE)).ok()?;
        toml::from_str(&text).ok()
    }

    /// The newest `<prefix>_iter_<N>.solverstate` with `N <= max_iter`.
    pub fn latest_snapshot(&self, max_iter: u32) -> Option<Resume> {
        let entries = fs::read_dir(&self.dir).ok()?;
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".solverstate")?;
                let iter: u32 = stem.rsplit_once("_iter_")?.1.parse().ok()?;
                (iter <= max_iter).then(|| Resume {
                    iter,
                    solverstate: e.path(),
                })
            })
            .max_by_key(|r| r.iter)
    }

    pub fn write_params(&self, experiment: &Experiment, cell: &Cell) -> io::Result<()> {
        let file = ParamsFile {
            experiment: &experiment.name,
            cell: &cell.id,
            solver: &experiment.solver,
            net: &experiment.net,
            data: &experiment.data.dir,
            iterations: experiment.iterations,
            test_interval: experiment.test_interval,
            snapshot_interval: experiment.snapshot_interval,
            params: &cell.params,
        };
        let text = toml::to_string(&file).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(PARAMS_FILE), text.as_bytes())
    }

    /// Every complete row of log.csv (none when it is missing); a torn last line from a
    /// killed run, or any line that is not a row, is left out.
    pub fn read_log(&self) -> Vec<LogRow> {
        fs::read(self.dir.join(LOG_FILE)).map_or_else(|_| Vec::new(), |b| parse_log_lines(&b))
    }

    /// features.csv (siamese-report's features CSV) for the test images.
    pub fn write_features(&self, features: &LabelledFeatures) -> io::Result<()> {
        let dim = features.first().map_or(0, |(f, _)| f.len());
        let bytes = features_csv(dim, features.iter().map(|(f, d)| (f.as_slice(), Some(*d))));
        write_atomic(&self.dir.join(FEATURES_FILE), &bytes)
    }

    /// Removes a done.toml left by a run with another iteration count.
    pub fn clear_done(&self) -> io::Result<()> {
        match fs::remove_file(self.dir.join(DONE_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes the temporary files of writes cut short when an earlier run was killed: the
    /// snapshot writers' `.<name>.tmp<pid>` and [`write_atomic`]'s `<name>.<pid>-<nonce>.part`,
    /// once their process is not running. Other files stay. Returns the removed paths.
    pub fn remove_stale_temp_files(&self) -> io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|name| temp_file_pid(name).or_else(|| part_file_pid(name)));
            if let Some(pid) = pid
                && entry.file_type()?.is_file()
                && !writer_may_be_running(pid)
            {
                fs::remove_file(entry.path())?;
                removed.push(entry.path());
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// features.csv as written by [`CellFolder::write_features`]; `None` if absent or bad.
    pub fn read_features(&self) -> Option<LabelledFeatures> {
        siamese_report::read_features(&self.dir.join(FEATURES_FILE)).ok()
    }

    /// Marks the cell finished.
    pub fn write_done(&self, summary: &CellSummary) -> io::Result<()> {
        let text = toml::to_string(summary).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(DONE_FILE), text.as_bytes())
    }
}

/// The process id in the name of a temporary file [`write_atomic`] creates,
/// `<name>.<pid>-<16 hex digits>.part`; `None` for any other name.
fn part_file_pid(file_name: &str) -> Option<u32> {
    let (rest, nonce) = file_name.strip_suffix(".part")?.rsplit_once('-')?;
    let (target, pid) = rest.rsplit_once('.')?;
    let nonce_ok = nonce.len() == 16 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    let pid_ok = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (nonce_ok && pid_ok && !target.is_empty()).then(|| pid.parse().ok())?
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a
/// reader never sees half a file. The temporary name is unique to this write (process id and
/// a random number), so writers in other processes or on other hosts sharing the folder
/// (Slurm array tasks) never write into each other's temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let nonce = std::collections::hash_map::RandomState::new()
        .hash_one(WRITES.fetch_add(1, Ordering::Relaxed));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{nonce:016x}.part", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_file_names_are_recognised_exactly() {
        let check =
            |name: &str, expect: Option<u32>| assert_eq!(part_file_pid(name), expect, "{name}");
        check("log.csv.4242-00ff00ff00ff00ff.part", Some(4242));
        check("status.toml.7-0123456789abcdef.part", Some(7));
        check("log.csv.4242-00ff00ff00ff00f.part", None); // 15 hex digits
        check("log.csv.42x-00ff00ff00ff00ff.part", None);
        check(".4242-00ff00ff00ff00ff.part", None);
        check("my-notes.part", None);
        check("log.csv", None);
    }

    /// The temporary files of both writers, left by a process that is gone, are removed;
    /// files of a running process and every other file stay.
    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let stale = [
            format!("log.csv.{gone}-00ff00ff00ff00ff.part"),
            format!(".cell_iter_5.caffemodel.tmp{gone}"),
        ];
        let kept = [
            "log.csv.1-00ff00ff00ff00ff.part".to_string(), // pid 1 runs
            ".cell_iter_5.solverstate.tmp1".to_string(),
            "cell_iter_5.caffemodel".to_string(),
            "notes.part".to_string(),
            format!("cell.{gone}.tmp"),
        ];
        for name in stale.iter().chain(&kept) {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let folder = CellFolder::new(dir.path().to_path_buf());
        let mut expect: Vec<_> = stale.iter().map(|n| dir.path().join(n)).collect();
        expect.sort();
        assert_eq!(folder.remove_stale_temp_files().unwrap(), expect);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut kept = kept.to_vec();
        kept.sort();
        assert_eq!(left, kept);
    }
}
