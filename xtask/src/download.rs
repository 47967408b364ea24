//! Fetching published files from a list of mirrors: retries, a progress bar, and a temporary
//! file (siamese-files) that gets the final name only once its SHA-256 matches the known one.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

/// A file to fetch: its name on every mirror and the SHA-256 (hex) it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    pub sha256: String,
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Extra attempts on the same mirror after a network failure (not after a bad checksum).
    pub retries: usize,
    /// Wait before retry n is `backoff * n`.
    pub backoff: Duration,
    /// Connect and read timeout.
    pub timeout: Duration,
    /// Draw a progress bar on stderr (indicatif hides it when stderr is not a terminal).
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            retries: 2,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            progress: true,
        }
    }
}

/// What went wrong with one attempt.
enum Failure {
    /// The server answered with an error status: retrying that mirror is pointless.
    Status(String),
    /// The host name does not resolve (no network, or a wrong mirror): no retry either.
    Unresolved(String),
    /// No usable answer (refused, reset, timeout): worth a retry.
    Network(String),
    /// The server answered but the body was cut short: worth a retry, and proof the network
    /// works (so no "no network?" hint).
    Cut(String),
    /// The local file could not be written: no mirror can fix that.
    Local(anyhow::Error),
}

/// Downloads `file` into `dir`, trying `mirrors` in order, and returns the final path. A file
/// already there with the right checksum is kept without any network access.
pub fn download(
    file: &RemoteFile,
    mirrors: &[String],
    dir: &Path,
    opts: &FetchOptions,
) -> Result<PathBuf> {
    let dest = dir.join(&file.name);
    if dest.is_file() && sha256_file(&dest)? == file.sha256 {
        println!("{}: present, SHA-256 ok", dest.display());
        return Ok(dest);
    }
    let mut failures = Vec::new();
    let mut any_answer = false;
    for mirror in mirrors {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), file.name);
        let mut attempts = 0;
        let failure = loop {
            if attempts > 0 {
                std::thread::sleep(opts.backoff * attempts as u32);
            }
            attempts += 1;
            let part = siamese_files::AtomicFile::new(&dest)?;
            match fetch(&url, &part, opts) {
                Ok(sha) if sha == file.sha256 => {
                    part.commit()?;
                    return Ok(dest);
                }
                Ok(sha) => {
                    any_answer = true;
                    break format!("SHA-256 {sha}, expected {}", file.sha256);
                }
                Err(Failure::Status(msg)) => {
                    any_answer = true;
                    break msg;
                }
                Err(Failure::Unresolved(msg)) => break msg,
                Err(Failure::Cut(msg)) if attempts > opts.retries => {
                    any_answer = true;
                    break msg;
                }
                Err(Failure::Network(msg)) if attempts > opts.retries => break msg,
                Err(Failure::Network(_) | Failure::Cut(_)) => {}
                Err(Failure::Local(e)) => return Err(e),
            }
        };
        let tries = if attempts > 1 {
            format!(" ({attempts} attempts)")
        } else {
            String::new()
        };
        failures.push(format!("{url}: {failure}{tries}"));
    }
    let hint = if any_answer {
        String::new()
    } else {
        " (no network?) -- import the files with `cargo xtask get-mnist --from DIR`, or use \
         the embedded sample: `cargo xtask create-siamese-db --in data/mnist-sample`"
            .to_string()
    };
    bail!(
        "{}: no mirror gave the file with the expected SHA-256{hint}; tried {}",
        dest.display(),
        failures.join("; ")
    )
}

/// One GET of `url` into `part`'s temporary file, returning the SHA-256 of what arrived.
fn fetch(
    url: &str,
    part: &siamese_files::AtomicFile,
    opts: &FetchOptions,
) -> Result<String, Failure> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(opts.timeout)
        .timeout_read(opts.timeout)
        .build();
    let response = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            return Err(Failure::Status(format!("HTTP {code} {}", r.status_text())));
        }
        Err(ureq::Error::Transport(t)) => {
            // The transport's own Display repeats the URL; keep its kind and detail.
            let detail = t.message().map(|m| format!(": {m}")).unwrap_or_default();
            let msg = format!("{}{detail}", t.kind());
            return Err(match t.kind() {
                ureq::ErrorKind::Dns => Failure::Unresolved(msg),
                _ => Failure::Network(msg),
            });
        }
    };
    let expected_len = response
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let bar = progress_bar(url, expected_len, opts.progress);
    let local = |e: std::io::Error| {
        Failure::Local(anyhow::anyhow!(
            "{}: cannot write: {e}",
            part.target().display()
        ))
    };
    let mut out = BufWriter::new(File::create(part.temp_path()).map_err(local)?);
    let mut reader = response.into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(Failure::Cut(format!("after {received} bytes: {e}")));
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(local)?;
        received += n as u64;
        bar.set_position(received);
    }
    out.flush().map_err(local)?;
    bar.finish_and_clear();
    if let Some(len) = expected_len.filter(|&len| len != received) {
        return Err(Failure::Cut(format!(
            "connection closed after {received} of {len} bytes"
        )));
    }
    Ok(hex::encode(hasher.finalize()))
}

fn progress_bar(url: &str, len: Option<u64>, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len.unwrap_or(0));
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(url.to_string());
    bar
}

/// SHA-256 of a file's bytes, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// What the loopback server answers for a path.
    #[derive(Clone)]
    enum Reply {
        /// 200 with this body.
        Body(Vec<u8>),
        /// 200 announcing the body's full length, then closing after half of it.
        DropHalfway(Vec<u8>),
        /// 200 with no Content-Length (the body ends when the connection closes), closing
        /// after half of it.
        CutUnannounced(Vec<u8>),
    }

    /// A minimal HTTP/1.1 server on 127.0.0.1 for `routes` (anything else: 404). It answers
    /// at most 32 requests and stops by itself after 20 s.
    fn serve(routes: Vec<(&'static str, Reply)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut served = 0;
            while served < 32 && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        answer(stream, &routes);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        base
    }

    fn answer(stream: TcpStream, routes: &[(&'static str, Reply)]) {
        stream.set_nonblocking(false).unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut stream = stream;
        let head = |len: usize| {
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
        };
        match routes.iter().find(|(p, _)| *p == path).map(|(_, r)| r) {
            Some(Reply::Body(body)) => {
                let _ = stream.write_all(head(body.len()).as_bytes());
                let _ = stream.write_all(body);
            }
            Some(Reply::DropHalfway(body)) => {
                let _ = stream.write_all(head(body.len()).as_bytes());
                let _ = stream.write_all(&body[..body.len() / 2]);
            }
            Some(Reply::CutUnannounced(body)) => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(&body[..body.len() / 2]);
            }
            None => {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        }
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    /// A URL where nothing listens: bind a port, then free it.
    fn dead_mirror() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/")
    }

    fn payload() -> Vec<u8> {
        (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn remote(body: &[u8]) -> RemoteFile {
        RemoteFile {
            name: "train-labels-idx1-ubyte.gz".into(),
            sha256: hex::encode(Sha256::digest(body)),
        }
    }

    fn quick() -> FetchOptions {
        FetchOptions {
            retries: 1,
            backoff: Duration::ZERO,
            timeout: Duration::from_secs(5),
            progress: false,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    const PATH: &str = "/train-labels-idx1-ubyte.gz";

    #[test]
    fn good_file_arrives_under_its_name() {
        let body = payload();
        let mirror = serve(vec![(PATH, Reply::Body(body.clone()))]);
        let dir = tempfile::tempdir().unwrap();
        let got = download(&remote(&body), &[mirror], dir.path(), &quick()).unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), body);
        assert_eq!(names(dir.path()), ["train-labels-idx1-ubyte.gz"]);
        // Present with the right checksum: no network needed the second time.
        let again = download(&remote(&body), &[dead_mirror()], dir.path(), &quick()).unwrap();
        assert_eq!(again, got);
    }

    #[test]
    fn corrupted_file_moves_on_to_the_next_mirror() {
        let body = payload();
        let mut bad = body.clone();
        bad[500] ^= 1;
        let corrupt = serve(vec![(PATH, Reply::Body(bad))]);
        let good = serve(vec![(PATH, Reply::Body(body.clone()))]);
        let dir = tempfile::tempdir().unwrap();
        let got = download(&remote(&body), &[corrupt, good], dir.path(), &quick()).unwrap();
        assert_eq!(std::fs::read(got).unwrap(), body);
        assert_eq!(names(dir.path()), ["train-labels-idx1-ubyte.gz"]);
    }

    #[test]
    fn corrupted_everywhere_is_a_clear_error_leaving_no_file() {
        let body = payload();
        let mut bad = body.clone();
        bad[0] ^= 1;
        let corrupt = serve(vec![(PATH, Reply::Body(bad.clone()))]);
        let dir = tempfile::tempdir().unwrap();
        let file = remote(&body);
        let err = download(&file, std::slice::from_ref(&corrupt), dir.path(), &quick())
            .unwrap_err()
            .to_string();
        let bad_sha = hex::encode(Sha256::digest(&bad));
        assert!(
            err.contains(&format!(
                "{corrupt}train-labels-idx1-ubyte.gz: SHA-256 {bad_sha}, expected {}",
                file.sha256
            )),
            "{err}"
        );
        assert!(!err.contains("no network"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn dropped_connection_is_retried_then_the_next_mirror_used() {
        let body = payload();
        let dropping = serve(vec![(PATH, Reply::DropHalfway(body.clone()))]);
        let dir = tempfile::tempdir().unwrap();
        let err = download(
            &remote(&body),
            std::slice::from_ref(&dropping),
            dir.path(),
            &quick(),
        )
        .unwrap_err()
        .to_string();
        // Two attempts (retries: 1), both cut short.
        assert!(
            err.contains(&format!("{dropping}train-labels-idx1-ubyte.gz: ")),
            "{err}"
        );
        assert!(err.ends_with("(2 attempts)"), "{err}");
        assert!(err.contains("50000"), "{err}");
        assert!(names(dir.path()).is_empty());
        let good = serve(vec![(PATH, Reply::Body(body.clone()))]);
        let got = download(&remote(&body), &[dropping, good], dir.path(), &quick()).unwrap();
        assert_eq!(std::fs::read(got).unwrap(), body);
    }

    #[test]
    fn dead_first_mirror_falls_through_to_the_next() {
        let body = payload();
        let good = serve(vec![(PATH, Reply::Body(body.clone()))]);
        let dir = tempfile::tempdir().unwrap();
        let got = download(&remote(&body), &[dead_mirror(), good], dir.path(), &quick()).unwrap();
        assert_eq!(std::fs::read(got).unwrap(), body);
    }

    #[test]
    fn missing_file_is_an_http_error_not_a_retry() {
        let body = payload();
        let empty = serve(vec![]);
        let dir = tempfile::tempdir().unwrap();
        let err = download(&remote(&body), &[empty], dir.path(), &quick())
            .unwrap_err()
            .to_string();
        assert_eq!(err.matches("HTTP 404").count(), 1, "{err}");
    }

    #[test]
    fn no_network_names_from_and_the_sample() {
        let body = payload();
        let dir = tempfile::tempdir().unwrap();
        let err = download(
            &remote(&body),
            &[dead_mirror(), dead_mirror()],
            dir.path(),
            &quick(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("(no network?)"), "{err}");
        assert!(err.contains("--from DIR"), "{err}");
        assert!(err.contains("data/mnist-sample"), "{err}");
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn cut_off_download_keeps_the_file_already_there() {
        let body = payload();
        let dir = tempfile::tempdir().unwrap();
        // An older file under the final name (another version: wrong checksum).
        let dest = dir.path().join("train-labels-idx1-ubyte.gz");
        std::fs::write(&dest, b"an older download").unwrap();
        let dropping = serve(vec![(PATH, Reply::DropHalfway(body.clone()))]);
        let err = download(&remote(&body), &[dropping], dir.path(), &quick())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(": after 50000 bytes: ") && !err.contains("no network"),
            "{err}"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"an older download");
        assert_eq!(
            names(dir.path()),
            ["train-labels-idx1-ubyte.gz"],
            "no temporary file left"
        );
    }

    #[test]
    fn cut_off_download_without_length_fails_its_checksum() {
        let body = payload();
        let cut = serve(vec![(PATH, Reply::CutUnannounced(body.clone()))]);
        let dir = tempfile::tempdir().unwrap();
        let err = download(&remote(&body), &[cut], dir.path(), &quick())
            .unwrap_err()
            .to_string();
        let half = hex::encode(Sha256::digest(&body[..body.len() / 2]));
        assert!(err.contains(&format!("SHA-256 {half}, expected")), "{err}");
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn files_already_downloaded_survive_a_later_cut() {
        let body = payload();
        let other = RemoteFile {
            name: "t10k-labels-idx1-ubyte.gz".into(),
            sha256: hex::encode(Sha256::digest(b"other")),
        };
        let mirror = serve(vec![
            (PATH, Reply::Body(body.clone())),
            (
                "/t10k-labels-idx1-ubyte.gz",
                Reply::DropHalfway(b"other".to_vec()),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let mirrors = [mirror];
        download(&remote(&body), &mirrors, dir.path(), &quick()).unwrap();
        download(&other, &mirrors, dir.path(), &quick()).unwrap_err();
        assert_eq!(names(dir.path()), ["train-labels-idx1-ubyte.gz"]);
        assert_eq!(
            std::fs::read(dir.path().join("train-labels-idx1-ubyte.gz")).unwrap(),
            body
        );
    }

    /// An output folder that cannot take files (its path runs through a regular file, which
    /// fails even for root, unlike chmod 0555): a clear error naming the file, no retry.
    #[test]
    fn unwritable_folder_names_the_file() {
        let body = payload();
        let mirror = serve(vec![(PATH, Reply::Body(body.clone()))]);
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let out = blocker.join("mnist");
        let err = download(&remote(&body), &[mirror], &out, &quick())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: cannot write: Not a directory (os error 20)",
                out.join("train-labels-idx1-ubyte.gz").display()
            )
        );
    }

    /// A tmpfs of `kib` KiB, unmounted on drop: a disk that really fills up (ENOSPC).
    struct SmallDisk(tempfile::TempDir);

    impl SmallDisk {
        /// `None`, with the reason printed, where this process may not mount (not root).
        fn mount(kib: usize) -> Option<SmallDisk> {
            let dir = tempfile::tempdir().unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
                .arg(dir.path())
                .stderr(std::process::Stdio::null())
                .status();
            if !status.is_ok_and(|s| s.success()) {
                eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
                return None;
            }
            Some(SmallDisk(dir))
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    #[test]
    fn full_disk_is_a_clear_error_leaving_no_temporary_file() {
        let Some(disk) = SmallDisk::mount(64) else {
            return;
        };
        let body = payload(); // 100,000 bytes: more than the disk holds
        let mirror = serve(vec![(PATH, Reply::Body(body.clone()))]);
        let kept = disk.0.path().join("kept");
        std::fs::write(&kept, b"written before").unwrap();
        let err = download(&remote(&body), &[mirror], disk.0.path(), &quick())
            .unwrap_err()
            .to_string();
        let dest = disk.0.path().join("train-labels-idx1-ubyte.gz");
        assert_eq!(
            err,
            format!(
                "{}: cannot write: No space left on device (os error 28)",
                dest.display()
            )
        );
        assert_eq!(names(disk.0.path()), ["kept"]);
        assert_eq!(std::fs::read(&kept).unwrap(), b"written before");
    }
}
