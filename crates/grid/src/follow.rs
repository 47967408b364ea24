//! The runs-folder follower behind `--watch`: polls the files the cells write (grid.toml,
//! log.csv, embedding.csv, features.csv, done.toml, status.toml) and turns what changed into
//! `CellEvent`s, so a grid run by Slurm array tasks (or another process) can be shown anywhere.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use siamese_report::{LogRow, parse_log_lines};

use crate::cell_folder::{CellFolder, DONE_FILE};
use crate::cell_log::{LOG_FILE, iterations_done, row_events};
use crate::cell_progress::{
    CellStatus, DigitScatter, EMBEDDING_FILE, RunState, STALE_AFTER, read_embedding, unix_seconds,
};
use crate::cell_trainer::{CellEvent, CellSummary};
use crate::cells::Cell;
use crate::manifest::{GridManifest, ManifestError};

/// How often a follower should read the files again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Follows a growing log.csv: each read returns the rows appended since the last one
/// (complete lines only). A replaced file (a resumed run rewrites it) or a shorter one is
/// read again from its start, and the read says so.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    pending: Vec<u8>,
    /// Device and inode of the file being followed.
    file: Option<(u64, u64)>,
}

/// What one [`LogTail::read`] found.
#[derive(Debug, Default, PartialEq)]
pub struct TailRead {
    /// The file was replaced or truncated: earlier rows are void, `rows` start afresh.
    pub restarted: bool,
    pub rows: Vec<LogRow>,
}

impl LogTail {
    pub fn new(path: PathBuf) -> LogTail {
        LogTail {
            path,
            offset: 0,
            pending: Vec::new(),
            file: None,
        }
    }

    pub fn read(&mut self) -> io::Result<TailRead> {
        let mut file = match fs::File::open(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let restarted = self.file.take().is_some();
                self.offset = 0;
                self.pending.clear();
                return Ok(TailRead {
                    restarted,
                    rows: Vec::new(),
                });
            }
            other => other?,
        };
        let meta = file.metadata()?;
        let id = (meta.dev(), meta.ino());
        let mut restarted = false;
        if self.file != Some(id) || meta.len() < self.offset {
            restarted = self.file.is_some();
            self.file = Some(id);
            self.offset = 0;
            self.pending.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let read = file.read_to_end(&mut self.pending)?;
        self.offset += read as u64;
        let rows = match self.pending.iter().rposition(|b| *b == b'\n') {
            Some(end) => parse_log_lines(&self.pending.drain(..=end).collect::<Vec<_>>()),
            None => Vec::new(),
        };
        Ok(TailRead { restarted, rows })
    }
}

/// What a followed cell is doing, as far as its files tell.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Queued,
    Running,
    Done(CellSummary),
    Failed(String),
    Stopped,
    /// Early stopping pruned it: `(at, reason)`.
    Pruned(u32, String),
}

#[derive(Debug)]
struct FollowedCell {
    log: LogTail,
    seen: Seen,
    /// Iterations done as of the last logged row, and its training time.
    last: (u32, f64),
    /// The moment the cell's logged time 0 corresponds to (set from the first rows seen),
    /// so events sit on the cell's own timeline and the ETA follows its pace.
    anchor: Option<Instant>,
    /// Modification time and length of the embedding file last read.
    embedding: Option<(SystemTime, u64)>,
}

impl FollowedCell {
    /// The moment `seconds` of the cell's training time corresponds to.
    fn at(&self, now: Instant, seconds: f64) -> Instant {
        self.anchor.map_or(now, |a| a + duration(seconds))
    }
}

/// The grid in a runs folder, read again at every [`WatchFeed::poll`].
#[derive(Debug)]
pub struct WatchFeed {
    grid_dir: PathBuf,
    manifest: GridManifest,
    cells: Vec<Cell>,
    followed: Vec<FollowedCell>,
}

/// Events found in one poll, each with the moment to apply it at.
type Found = Vec<(CellEvent, Instant)>;

impl WatchFeed {
    /// The grid in `grid_dir` (`runs/<experiment>/`, with its grid.toml).
    pub fn open(grid_dir: &Path) -> Result<WatchFeed, ManifestError> {
        let manifest = GridManifest::read(grid_dir)?;
        let cells = manifest.cells()?;
        let followed = cells
            .iter()
            .map(|c| FollowedCell {
                log: LogTail::new(grid_dir.join(&c.id).join(LOG_FILE)),
                seen: Seen::Queued,
                last: (0, 0.0),
                anchor: None,
                embedding: None,
            })
            .collect();
        Ok(WatchFeed {
            grid_dir: grid_dir.to_path_buf(),
            manifest,
            cells,
            followed,
        })
    }

    pub fn experiment(&self) -> &str {
        &self.manifest.experiment
    }

    pub fn iterations(&self) -> u32 {
        self.manifest.iterations
    }

    /// The metric the experiment ranks its cells by.
    pub fn metric(&self) -> crate::ranking::RankMetric {
        self.manifest.rank_metric()
    }

    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Whether every cell is finished or failed (as of the last poll).
    pub fn all_over(&self) -> bool {
        self.followed
            .iter()
            .all(|w| matches!(w.seen, Seen::Done(_) | Seen::Failed(_) | Seen::Pruned(..)))
    }

    /// Whether every cell is finished or pruned (as of the last poll).
    pub fn all_done(&self) -> bool {
        self.followed
            .iter()
            .all(|w| matches!(w.seen, Seen::Done(_) | Seen::Pruned(..)))
    }

    /// What changed since the last poll, as events for the dashboard, each with the moment
    /// to apply it at. `now` is the current moment and `wall` the current Unix time in
    /// seconds (heartbeats are compared with it).
    pub fn poll(&mut self, now: Instant, wall: u64) -> Found {
        let mut events = Vec::new();
        for index in 0..self.cells.len() {
            self.poll_cell(index, now, wall, &mut events);
        }
        events
    }

    /// One cell's new events: its start, the rows added to its log, a new embedding, and
    /// its end (with the final embedding from features.csv).
    fn poll_cell(&mut self, cell: usize, now: Instant, wall: u64, events: &mut Found) {
        let dir = self.grid_dir.join(&self.cells[cell].id);
        let total = self.manifest.iterations;
        let followed = &mut self.followed[cell];
        if matches!(followed.seen, Seen::Done(_) | Seen::Pruned(..))
            && dir.join(DONE_FILE).is_file()
        {
            return;
        }
        if !dir.is_dir() {
            return;
        }
        let tail = followed.log.read().unwrap_or_default();
        if tail.restarted {
            followed.last = (0, 0.0);
            followed.anchor = None;
            followed.seen = Seen::Queued;
        }
        if followed.anchor.is_none()
            && let Some(row) = tail.rows.last()
        {
            followed.anchor = Some(now.checked_sub(duration(row.elapsed_s)).unwrap_or(now));
        }
        let Some(state) = state_of(&dir, total, wall) else {
            return;
        };
        let starts = state == Seen::Running || !tail.rows.is_empty();
        if starts && !matches!(followed.seen, Seen::Running) || tail.restarted {
            events.push(started(cell, total, followed, now));
            followed.seen = Seen::Running;
        }
        for row in &tail.rows {
            let at = followed.at(now, row.elapsed_s);
            events.extend(row_events(cell, row).into_iter().map(|e| (e, at)));
            followed.last = (iterations_done(row), row.elapsed_s);
        }
        events.extend(new_embedding(cell, &dir, followed, now));
        if state != followed.seen && state != Seen::Running && state != Seen::Queued {
            events.extend(ended(cell, &dir, &state, total, now));
            followed.seen = state;
        }
    }
}

/// The `Started` event of a cell seen running, resumed where its log ends.
fn started(cell: usize, total: u32, followed: &FollowedCell, now: Instant) -> (CellEvent, Instant) {
    let (from, seconds) = followed.last;
    let event = CellEvent::Started {
        cell,
        total_iters: total,
        resumed_from: (from > 0).then_some(from),
    };
    (event, followed.at(now, seconds))
}

/// An `Embedding` event when embedding.csv changed since the last read.
fn new_embedding(
    cell: usize,
    dir: &Path,
    followed: &mut FollowedCell,
    now: Instant,
) -> Option<(CellEvent, Instant)> {
    let stamp = fs::metadata(dir.join(EMBEDDING_FILE))
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())));
    if stamp.is_none() || stamp == followed.embedding {
        return None;
    }
    followed.embedding = stamp;
    let scatter = read_embedding(dir)?;
    Some((CellEvent::Embedding { cell, scatter }, now))
}

/// The events of a cell that ended (`state` is done, failed or stopped): the end itself and,
/// for a finished cell, its final embedding from features.csv.
fn ended(cell: usize, dir: &Path, state: &Seen, total: u32, now: Instant) -> Found {
    let event = match state {
        Seen::Done(summary) => CellEvent::Finished {
            cell,
            summary: summary.clone(),
        },
        Seen::Failed(error) => CellEvent::Failed {
            cell,
            error: error.clone(),
        },
        Seen::Pruned(at, reason) => CellEvent::Pruned {
            cell,
            at: *at,
            reason: reason.clone(),
        },
        _ => CellEvent::Stopped { cell },
    };
    let mut events = vec![(event, now)];
    if matches!(state, Seen::Done(_))
        && let Some(features) = CellFolder::new(dir.to_path_buf()).read_features()
        && let Some(scatter) = DigitScatter::of_features(total, &features)
    {
        events.push((CellEvent::Embedding { cell, scatter }, now));
    }
    events
}

fn duration(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

/// What the files of the cell folder `dir` say; `None` when status.toml cannot be read now
/// (the state is then left as it was).
fn state_of(dir: &Path, total: u32, wall: u64) -> Option<Seen> {
    let folder = CellFolder::new(dir.to_path_buf());
    if let Some(summary) = folder.done().filter(|s| s.iterations == total) {
        return Some(Seen::Done(summary));
    }
    if let Some(pruned) = folder.pruned() {
        return Some(Seen::Pruned(pruned.iterations, pruned.reason));
    }
    match CellStatus::read(dir) {
        Some(Err(_)) => None,
        Some(Ok(status)) => Some(reported_state(status, wall)),
        // No status.toml: a folder written by a local grid run; its log says if it is alive.
        None => Some(
            match fs::metadata(dir.join(LOG_FILE)).and_then(|m| m.modified()) {
                Ok(modified)
                    if wall.saturating_sub(unix_seconds(modified)) <= STALE_AFTER.as_secs() =>
                {
                    Seen::Running
                }
                Ok(_) => Seen::Stopped,
                Err(_) => Seen::Queued,
            },
        ),
    }
}

/// The state a status.toml reports at `wall` (Unix seconds): a running cell without a recent
/// heartbeat has died.
fn reported_state(status: CellStatus, wall: u64) -> Seen {
    match status.state {
        RunState::Running if status.is_stale(wall) => {
            let job = status
                .job
                .as_deref()
                .map(|j| format!(" (Slurm job {j})"))
                .unwrap_or_default();
            Seen::Failed(format!(
                "no heartbeat from {}{job} for {} s: the task died (time or memory limit? \
                 see the job's log)",
                status.host,
                wall.saturating_sub(status.heartbeat)
            ))
        }
        RunState::Running => Seen::Running,
        RunState::Failed => Seen::Failed(
            status
                .error
                .unwrap_or_else(|| format!("failed on {}", status.host)),
        ),
        // A done status without a done.toml for these iterations: another run's.
        RunState::Stopped | RunState::Done => Seen::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    const HEADER: &str = "iter,lr,train_loss,test_loss,elapsed_s\n";

    #[test]
    fn a_pruned_cell_is_seen_pruned_and_ends_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let folder = CellFolder::new(dir.path().to_path_buf());
        let pruned = crate::cell_folder::PrunedCell {
            state: crate::cell_folder::PRUNED.to_string(),
            iterations: 300,
            metric: "test_loss".into(),
            value: 0.5,
            reason: "asha: out of the top third".into(),
            wall_seconds: 1.0,
        };
        folder.write_pruned(&pruned).unwrap();
        assert!(folder.done().is_none(), "a pruned cell is not finished");
        let seen = state_of(dir.path(), 1000, 0).unwrap();
        assert_eq!(seen, Seen::Pruned(300, "asha: out of the top third".into()));
        let now = Instant::now();
        let events = ended(0, dir.path(), &seen, 1000, now);
        assert_eq!(
            events,
            [(
                CellEvent::Pruned {
                    cell: 0,
                    at: 300,
                    reason: "asha: out of the top third".into()
                },
                now
            )]
        );
    }

    fn row(iter: i32, train: Option<f32>, test: Option<f32>, s: f64) -> LogRow {
        LogRow {
            iter,
            lr: train.map(|_| 0.01),
            train_loss: train,
            test_loss: test,
            elapsed_s: s,
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn the_tail_returns_new_complete_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let mut tail = LogTail::new(path.clone());
        assert_eq!(tail.read().unwrap(), TailRead::default(), "no file yet");
        append(&path, HEADER);
        append(&path, "0,0.01,0.5,,0.1\n1,0.01,0.4");
        let read = tail.read().unwrap();
        assert_eq!(read.rows, vec![row(0, Some(0.5), None, 0.1)]);
        assert!(!read.restarted);
        assert_eq!(
            tail.read().unwrap(),
            TailRead::default(),
            "half a line waits"
        );
        append(&path, "5,0.25,0.2\n2,,,0.25,0.3\n");
        assert_eq!(
            tail.read().unwrap().rows,
            vec![
                row(1, Some(0.45), Some(0.25), 0.2),
                row(2, None, Some(0.25), 0.3)
            ]
        );
    }

    #[test]
    fn a_replaced_or_truncated_log_is_read_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let mut tail = LogTail::new(path.clone());
        append(
            &path,
            &format!("{HEADER}0,0.01,0.5,,0.1\n1,0.01,0.4,,0.2\n"),
        );
        assert_eq!(tail.read().unwrap().rows.len(), 2);
        // A resumed run rewrites log.csv (atomic rename: a new file) with the kept rows.
        let replacement = dir.path().join("log.csv.new");
        fs::write(&replacement, format!("{HEADER}0,0.01,0.5,,0.1\n")).unwrap();
        fs::rename(&replacement, &path).unwrap();
        let read = tail.read().unwrap();
        assert!(read.restarted);
        assert_eq!(read.rows, vec![row(0, Some(0.5), None, 0.1)]);
        // Truncated in place.
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, HEADER);
        let read = tail.read().unwrap();
        assert!(read.restarted);
        assert!(read.rows.is_empty());
        fs::remove_file(&path).unwrap();
        assert!(
            tail.read().unwrap().restarted,
            "a removed log voids its rows"
        );
    }
}
