//! `--watch runs/<experiment>`: the grid screen fed by polling the files the cells write
//! (grid.toml, log.csv, embedding.csv, features.csv, done.toml, status.toml), so a grid run
//! by Slurm array tasks (or by another siamese-tui) is watched from anywhere the folder is.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use crossterm::event::{self, Event, KeyEventKind};

use crate::cell_folder::{CellFolder, LOG_FILE, LogRow};
use crate::cell_progress::{
    CellStatus, EMBEDDING_FILE, RunState, STALE_AFTER, read_embedding, unix_now, unix_seconds,
};
use crate::cell_trainer::{CellEvent, CellSummary};
use crate::dashboard::{Action, Dashboard};
use crate::grid::Cell;
use crate::manifest::GridManifest;
use crate::terminal::{FrameClock, TerminalGuard, install_panic_hook};

/// How often the files are read again.
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

/// The rows in complete log.csv lines; the header and malformed lines are skipped.
pub fn parse_log_lines(bytes: &[u8]) -> Vec<LogRow> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes)
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.get(0) != Some("iter"))
        .filter_map(|r| r.deserialize(None).ok())
        .collect()
}

/// What a watched cell is doing, as far as its files tell.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Queued,
    Running,
    Done(CellSummary),
    Failed(String),
    Stopped,
}

#[derive(Debug)]
struct WatchedCell {
    log: LogTail,
    seen: Seen,
    /// The last logged iteration and its training time.
    last: (u32, f64),
    /// The moment the cell's logged time 0 corresponds to (set from the first rows seen),
    /// so events sit on the cell's own timeline and the ETA follows its pace.
    anchor: Option<Instant>,
    /// Modification time and length of the embedding file last read.
    embedding: Option<(SystemTime, u64)>,
}

/// The grid in a runs folder, read again at every [`WatchFeed::poll`].
#[derive(Debug)]
pub struct WatchFeed {
    grid_dir: PathBuf,
    manifest: GridManifest,
    cells: Vec<Cell>,
    watched: Vec<WatchedCell>,
}

impl WatchFeed {
    /// The grid in `grid_dir` (`runs/<experiment>/`, with its grid.toml).
    pub fn open(grid_dir: &Path) -> Result<WatchFeed, String> {
        let manifest = GridManifest::read(grid_dir)?;
        let cells = manifest.cells()?;
        let watched = cells
            .iter()
            .map(|c| WatchedCell {
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
            watched,
        })
    }

    pub fn experiment(&self) -> &str {
        &self.manifest.experiment
    }

    pub fn iterations(&self) -> u32 {
        self.manifest.iterations
    }

    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Whether every cell is finished or failed (as of the last poll).
    pub fn all_over(&self) -> bool {
        self.watched
            .iter()
            .all(|w| matches!(w.seen, Seen::Done(_) | Seen::Failed(_)))
    }

    /// What changed since the last poll, as events for the dashboard, each with the moment
    /// to apply it at. `now` is the current moment and `wall` the current Unix time in
    /// seconds (heartbeats are compared with it).
    pub fn poll(&mut self, now: Instant, wall: u64) -> Vec<(CellEvent, Instant)> {
        let mut events = Vec::new();
        for index in 0..self.cells.len() {
            self.poll_cell(index, now, wall, &mut events);
        }
        events
    }

    fn poll_cell(
        &mut self,
        cell: usize,
        now: Instant,
        wall: u64,
        events: &mut Vec<(CellEvent, Instant)>,
    ) {
        let dir = self.grid_dir.join(&self.cells[cell].id);
        let total = self.manifest.iterations;
        let w = &mut self.watched[cell];
        if matches!(w.seen, Seen::Done(_)) && dir.join(crate::cell_folder::DONE_FILE).is_file() {
            return;
        }
        if !dir.is_dir() {
            return;
        }
        let tail = w.log.read().unwrap_or_default();
        if tail.restarted {
            w.last = (0, 0.0);
            w.anchor = None;
            w.seen = Seen::Queued;
        }
        if w.anchor.is_none()
            && let Some(row) = tail.rows.last()
        {
            w.anchor = Some(now.checked_sub(seconds(row.seconds)).unwrap_or(now));
        }
        let at = |anchor: Option<Instant>, s: f64| anchor.map_or(now, |a| a + seconds(s));
        let Some(state) = state_of(&dir, total, wall) else {
            return;
        };
        let starts = state == Seen::Running || !tail.rows.is_empty();
        if starts && !matches!(w.seen, Seen::Running) || tail.restarted {
            let from = w.last.0;
            let event = CellEvent::Started {
                cell,
                total_iters: total,
                resumed_from: (from > 0).then_some(from),
            };
            events.push((event, at(w.anchor, w.last.1)));
            w.seen = Seen::Running;
        }
        for row in tail.rows {
            let event = match row.phase.as_str() {
                "test" => CellEvent::Test {
                    cell,
                    iter: row.iter,
                    loss: row.loss,
                    outputs: Vec::new(),
                },
                _ => CellEvent::Train {
                    cell,
                    iter: row.iter,
                    lr: row.lr.unwrap_or(0.0),
                    loss: row.loss,
                },
            };
            events.push((event, at(w.anchor, row.seconds)));
            w.last = (row.iter, row.seconds);
        }
        let stamp = fs::metadata(dir.join(EMBEDDING_FILE))
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp.is_some() && stamp != w.embedding {
            w.embedding = stamp;
            if let Some(e) = read_embedding(&dir) {
                let (iter, points) = (e.iter, e.points);
                events.push((CellEvent::Embedding { cell, iter, points }, now));
            }
        }
        if state == w.seen || state == Seen::Running || state == Seen::Queued {
            return;
        }
        let event = match &state {
            Seen::Done(summary) => CellEvent::Finished {
                cell,
                summary: summary.clone(),
            },
            Seen::Failed(error) => CellEvent::Failed {
                cell,
                error: error.clone(),
            },
            _ => CellEvent::Stopped { cell },
        };
        events.push((event, now));
        if matches!(state, Seen::Done(_))
            && let Some(features) = CellFolder::new(dir).read_features()
        {
            let points: Vec<(f32, f32, u8)> = features
                .iter()
                .filter(|(f, _)| f.len() >= 2)
                .map(|(f, d)| (f[0], f[1], *d))
                .collect();
            if !points.is_empty() {
                let event = CellEvent::Embedding {
                    cell,
                    iter: total,
                    points,
                };
                events.push((event, now));
            }
        }
        w.seen = state;
    }
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

/// What the files of the cell folder `dir` say; `None` when status.toml cannot be read now
/// (the state is then left as it was).
fn state_of(dir: &Path, total: u32, wall: u64) -> Option<Seen> {
    if let Some(summary) = CellFolder::new(dir.to_path_buf())
        .done()
        .filter(|s| s.iterations == total)
    {
        return Some(Seen::Done(summary));
    }
    let stale = STALE_AFTER.as_secs();
    match CellStatus::read(dir) {
        Some(Err(_)) => None,
        Some(Ok(status)) => Some(match status.state {
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
        }),
        // No status.toml: a folder written by a local grid run; its log says if it is alive.
        None => Some(
            match fs::metadata(dir.join(LOG_FILE)).and_then(|m| m.modified()) {
                Ok(modified) if wall.saturating_sub(unix_seconds(modified)) <= stale => {
                    Seen::Running
                }
                Ok(_) => Seen::Stopped,
                Err(_) => Seen::Queued,
            },
        ),
    }
}

/// The live screen for the grid in `grid_dir`, until the user quits.
pub fn watch_screen(grid_dir: &Path) -> anyhow::Result<()> {
    let mut feed = WatchFeed::open(grid_dir).map_err(anyhow::Error::msg)?;
    install_panic_hook();
    let mut guard =
        TerminalGuard::enter().context("cannot start the terminal screen (try --headless)")?;
    let mut dash = Dashboard::new(
        feed.experiment().to_string(),
        watch_note(grid_dir),
        feed.cells().to_vec(),
        feed.iterations(),
    );
    dash.watching = true;
    let mut clock = FrameClock::default();
    let mut next_poll = Instant::now();
    let mut dirty = true;
    loop {
        let now = Instant::now();
        if now >= next_poll {
            for (event, at) in feed.poll(now, unix_now()) {
                dash.apply(event, at);
                dirty = true;
            }
            next_poll = now + POLL_INTERVAL;
        }
        if dirty && clock.ready(now) {
            guard
                .terminal
                .draw(|frame| crate::screen::draw(frame, &dash))?;
            clock.drew(Instant::now());
            dirty = false;
        }
        let now = Instant::now();
        let wait = next_poll
            .saturating_duration_since(now)
            .min(if dirty {
                clock.wait(now)
            } else {
                POLL_INTERVAL
            })
            .max(Duration::from_millis(10));
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    dirty = true;
                    if dash.on_key(key) == Action::Quit {
                        return Ok(());
                    }
                }
                Event::Resize(_, _) => {
                    guard.terminal.autoresize()?;
                    dirty = true;
                }
                _ => {}
            }
        }
    }
}

/// The line under the title while watching.
pub fn watch_note(grid_dir: &Path) -> String {
    format!(
        "watching {} · files read every {} s; quitting leaves the cells running",
        grid_dir.display(),
        POLL_INTERVAL.as_secs()
    )
}

/// `--watch` without a screen: one line per cell event until every cell is finished or
/// failed; returns whether they all finished.
pub fn watch_headless(grid_dir: &Path, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut feed = WatchFeed::open(grid_dir).map_err(anyhow::Error::msg)?;
    writeln!(out, "{}: {}", feed.experiment(), watch_note(grid_dir))?;
    loop {
        for (event, _) in feed.poll(Instant::now(), unix_now()) {
            if let Some(line) = crate::headless::event_line(feed.cells(), &event) {
                writeln!(out, "{line}")?;
            }
        }
        out.flush()?;
        if feed.all_over() {
            let done = feed.watched.iter().all(|w| matches!(w.seen, Seen::Done(_)));
            return Ok(done);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    const HEADER: &str = "iter,phase,lr,loss,seconds\n";

    fn row(iter: u32, phase: &str, loss: f32) -> LogRow {
        LogRow {
            iter,
            phase: phase.into(),
            lr: (phase == "train").then_some(0.01),
            loss,
            seconds: f64::from(iter) / 10.0,
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
    fn log_lines_parse_and_bad_ones_are_skipped() {
        let check = |text: &str, expect: Vec<LogRow>| {
            assert_eq!(parse_log_lines(text.as_bytes()), expect, "{text:?}")
        };
        check(HEADER, vec![]);
        check(
            "iter,phase,lr,loss,seconds\n1,train,0.01,0.5,0.1\n2,test,,0.25,0.2\n",
            vec![row(1, "train", 0.5), row(2, "test", 0.25)],
        );
        check(
            "1,train,0.01,0.5,0.1\nnot,a,row\n3,train,0.01,oops,0.3\n2,test,,0.25,0.2\n",
            vec![row(1, "train", 0.5), row(2, "test", 0.25)],
        );
    }

    #[test]
    fn the_tail_returns_new_complete_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let mut tail = LogTail::new(path.clone());
        assert_eq!(tail.read().unwrap(), TailRead::default(), "no file yet");
        append(&path, HEADER);
        append(&path, "1,train,0.01,0.5,0.1\n2,train,0.01,0.4");
        let read = tail.read().unwrap();
        assert_eq!(read.rows, vec![row(1, "train", 0.5)]);
        assert!(!read.restarted);
        assert_eq!(
            tail.read().unwrap(),
            TailRead::default(),
            "half a line waits"
        );
        append(&path, "5,0.2\n2,test,,0.25,0.2\n");
        assert_eq!(
            tail.read().unwrap().rows,
            vec![
                LogRow {
                    seconds: 0.2,
                    ..row(2, "train", 0.45)
                },
                row(2, "test", 0.25)
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
            &format!("{HEADER}1,train,0.01,0.5,0.1\n2,train,0.01,0.4,0.2\n"),
        );
        assert_eq!(tail.read().unwrap().rows.len(), 2);
        // A resumed run rewrites log.csv (atomic rename: a new file) with the kept rows.
        let replacement = dir.path().join("log.csv.new");
        fs::write(&replacement, format!("{HEADER}1,train,0.01,0.5,0.1\n")).unwrap();
        fs::rename(&replacement, &path).unwrap();
        let read = tail.read().unwrap();
        assert!(read.restarted);
        assert_eq!(read.rows, vec![row(1, "train", 0.5)]);
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
