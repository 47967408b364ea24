//! Progress files of a cell trained by `run-cell` (a Slurm array task): status.toml (state,
//! host, Slurm job, heartbeat, error) and embedding.csv (the latest 2-D test embedding).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use siamese_report::LabelledFeatures;
use siamese_report::metrics::Points;
use siamese_report::metrics::projection::pca_2d;

use crate::cell_folder::write_atomic;

pub const STATUS_FILE: &str = "status.toml";
pub const EMBEDDING_FILE: &str = "embedding.csv";
/// How often a running cell rewrites its status.toml.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A cell whose heartbeat (or, without status.toml, whose log.csv) is older than this is
/// taken as dead: killed by the scheduler (time or memory limit), or its node went down.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// The 2-D test embedding after `iter` iterations: `(x, y, digit)` per test digit (the first
/// two feature components), as the screen's scatter shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DigitScatter {
    pub iter: u32,
    /// Dimensions of the embedding the points show: beyond 2, they are its PCA projection.
    pub dim: usize,
    pub points: Vec<(f32, f32, u8)>,
}

impl DigitScatter {
    /// The scatter of `features` after `iter` iterations: the points themselves for 1 or 2
    /// dimensions (y = 0 for 1), their first two principal components beyond.
    pub fn of_features(iter: u32, features: &LabelledFeatures) -> Option<DigitScatter> {
        let points = Points::from_rows(features)?;
        let xy = pca_2d(&points);
        Some(DigitScatter {
            iter,
            dim: points.dim,
            points: xy
                .into_iter()
                .zip(&points.labels)
                .map(|([x, y], &d)| (x, y, d))
                .collect(),
        })
    }

    /// `PCA of 8-D` for a projection, empty for points shown as they are.
    pub fn projection_note(&self) -> String {
        if self.dim > 2 {
            format!("PCA of {}-D", self.dim)
        } else {
            String::new()
        }
    }
}

/// A status.toml that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{}: {error}", .path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: {message}", .path.display())]
    Format { path: PathBuf, message: String },
}

/// What the process running a cell last said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Failed,
    /// Stopped on request (Ctrl-C, scancel, time limit); resumes from its last snapshot.
    Stopped,
    Done,
}

/// status.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellStatus {
    pub state: RunState,
    /// Iterations done when the status was written.
    pub iter: u32,
    pub total: u32,
    pub host: String,
    pub pid: u32,
    /// The Slurm job, `<array job>_<task>` (or the plain job id), when run by Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Unix seconds when this run of the cell started.
    pub started: u64,
    /// Unix seconds of the last write.
    pub heartbeat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CellStatus {
    /// A cell starting now in this process, `iter` of `total` iterations done.
    pub fn running(iter: u32, total: u32) -> CellStatus {
        let now = unix_now();
        CellStatus {
            state: RunState::Running,
            iter,
            total,
            host: host_name(),
            pid: std::process::id(),
            job: slurm_job(),
            started: now,
            heartbeat: now,
            error: None,
        }
    }

    /// status.toml of the cell folder `dir`: `None` when absent, `Err` when unreadable.
    pub fn read(dir: &Path) -> Option<Result<CellStatus, StatusError>> {
        let path = dir.join(STATUS_FILE);
        let text = match fs::read_to_string(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(error) => return Some(Err(StatusError::Io { path, error })),
            Ok(text) => text,
        };
        Some(toml::from_str(&text).map_err(|e| StatusError::Format {
            message: e.message().to_string(),
            path,
        }))
    }

    /// Writes status.toml into the cell folder `dir` (atomically), stamping the heartbeat.
    pub fn write(&mut self, dir: &Path) -> io::Result<()> {
        self.heartbeat = unix_now();
        let text = toml::to_string(self).map_err(io::Error::other)?;
        write_atomic(&dir.join(STATUS_FILE), text.as_bytes())
    }

    /// Whether the cell says it runs but has not written for [`STALE_AFTER`] at `now` (unix s).
    pub fn is_stale(&self, now: u64) -> bool {
        self.state == RunState::Running
            && now.saturating_sub(self.heartbeat) > STALE_AFTER.as_secs()
    }
}

/// embedding.csv: `iter,digit,x,y,dim` per test image (the scatter's points; `dim` > 2 means
/// they are a PCA projection).
pub fn write_embedding(dir: &Path, scatter: &DigitScatter) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["iter", "digit", "x", "y", "dim"])?;
    for (x, y, digit) in &scatter.points {
        w.write_record([
            scatter.iter.to_string(),
            digit.to_string(),
            x.to_string(),
            y.to_string(),
            scatter.dim.to_string(),
        ])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?;
    write_atomic(&dir.join(EMBEDDING_FILE), &bytes)
}

/// embedding.csv as written by [`write_embedding`]; `None` if absent, empty or malformed.
pub fn read_embedding(dir: &Path) -> Option<DigitScatter> {
    #[derive(Deserialize)]
    struct Row {
        iter: u32,
        digit: u8,
        x: f32,
        y: f32,
        /// Absent in files written before projections: 2-D.
        #[serde(default)]
        dim: Option<usize>,
    }
    let mut reader = csv::Reader::from_path(dir.join(EMBEDDING_FILE)).ok()?;
    let rows: Vec<Row> = reader.deserialize().collect::<Result<_, _>>().ok()?;
    let first = rows.first()?;
    let (iter, dim) = (first.iter, first.dim.unwrap_or(2));
    let points = rows.iter().map(|r| (r.x, r.y, r.digit)).collect();
    Some(DigitScatter { iter, dim, points })
}

pub fn unix_now() -> u64 {
    unix_seconds(SystemTime::now())
}

pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// This machine's name: Slurm's node name inside a job, else the kernel's host name.
pub fn host_name() -> String {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".to_string())
}

/// `<array job>_<task>` inside a Slurm array task, the job id inside another Slurm job.
pub fn slurm_job() -> Option<String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(job), Some(task)) => Some(format!("{job}_{task}")),
        _ => var("SLURM_JOB_ID"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_goes_stale_without_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        assert!(CellStatus::read(dir.path()).is_none());
        let mut status = CellStatus::running(10, 100);
        status.error = Some("line one\nline \"two\"".into());
        status.write(dir.path()).unwrap();
        let back = CellStatus::read(dir.path()).unwrap().unwrap();
        assert_eq!(back, status);
        let stale = STALE_AFTER.as_secs();
        assert!(!back.is_stale(back.heartbeat + stale));
        assert!(back.is_stale(back.heartbeat + stale + 1));
        let failed = CellStatus {
            state: RunState::Failed,
            ..back
        };
        assert!(!failed.is_stale(u64::MAX), "only running cells go stale");
    }

    #[test]
    fn a_bad_status_file_is_a_one_line_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATUS_FILE), "state = \"sleeping\"\n").unwrap();
        let error = CellStatus::read(dir.path())
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(error.contains("status.toml: "), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn embedding_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_embedding(dir.path()), None);
        let scatter = DigitScatter {
            iter: 40,
            dim: 8,
            points: vec![(0.5, -1.25, 3), (2.0, 0.0, 9)],
        };
        write_embedding(dir.path(), &scatter).unwrap();
        assert_eq!(read_embedding(dir.path()), Some(scatter));
        let empty = DigitScatter {
            iter: 50,
            dim: 2,
            points: vec![],
        };
        write_embedding(dir.path(), &empty).unwrap();
        assert_eq!(read_embedding(dir.path()), None, "no points, no embedding");
        // Files written before the `dim` column: 2-D.
        std::fs::write(
            dir.path().join(EMBEDDING_FILE),
            "iter,digit,x,y\n7,1,0.5,2\n",
        )
        .unwrap();
        assert_eq!(read_embedding(dir.path()).unwrap().dim, 2);
    }

    #[test]
    fn wide_embeddings_scatter_as_their_principal_components() {
        // 3-D points on a line along (0, 0, 1): the projection's x is that axis.
        let features: LabelledFeatures = (0..4)
            .map(|i| (vec![1.0, 1.0, i as f32], i as u8))
            .collect();
        let s = DigitScatter::of_features(9, &features).unwrap();
        assert_eq!(
            (s.iter, s.dim, s.projection_note().as_str()),
            (9, 3, "PCA of 3-D")
        );
        let xs: Vec<f32> = s.points.iter().map(|p| p.0).collect();
        assert!(
            xs.windows(2).all(|w| (w[1] - w[0] - 1.0).abs() < 1e-5),
            "{xs:?}"
        );
        let flat: LabelledFeatures = vec![(vec![1.0, 2.0], 0), (vec![3.0, 4.0], 1)];
        let s = DigitScatter::of_features(1, &flat).unwrap();
        assert_eq!(s.points, [(1.0, 2.0, 0), (3.0, 4.0, 1)]);
        assert_eq!(s.projection_note(), "");
    }
}
