//! Support for siamese's end-to-end tests: the binaries (built on demand), a small disk that
//! really fills up, a command under a file-size limit, and a process holding a LevelDB lock.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub use siamese_testkit::repo;

/// The workspace binary `name` (`siamese`, `siamese-tui`), built once per
/// test process with the same profile as the tests. (Cargo gives `CARGO_BIN_EXE_*` only to the
/// package that defines a binary.) The build is `cargo build --workspace --tests`, which
/// resolves features exactly as `cargo test --workspace` does: under the README's test command
/// it is a no-op, where `cargo build -p <package>` (other features) rebuilt most of the
/// dependency tree twice, about 7 of CI's minutes.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<bool>> = OnceLock::new();
    // target/<profile>/deps/<test binary> -> target/<profile>
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo())
            .args(["build", "--quiet", "--workspace", "--tests"]);
        if profile == "release" {
            cmd.arg("--release");
        } else if profile != "debug" {
            cmd.args(["--profile", &profile]);
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "cargo build --workspace --tests failed");
        *built = true;
    }
    profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The `siamese` command.
pub fn siamese() -> Command {
    Command::new(bin("siamese"))
}

/// A tmpfs of `kib` KiB, unmounted on drop: a disk that really fills up (ENOSPC).
pub struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    /// `None`, with the reason printed, where this process may not mount (not root, or no
    /// CAP_SYS_ADMIN in a container).
    pub fn mount(kib: usize) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Limits the files `cmd` writes to `bytes` (RLIMIT_FSIZE): a write past the limit fails with
/// EFBIG, as a write to a full disk fails with ENOSPC. SIGXFSZ is ignored so the write fails
/// instead of killing the process. Works for any user, unlike mounting a small disk.
#[cfg(unix)]
pub fn limit_file_size(cmd: &mut Command, bytes: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: between fork and exec the closure only calls async-signal-safe functions
    // (signal, setrlimit) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR
                || libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A helper process holding `db`'s LevelDB lock (fcntl, as C++ LevelDB and so Caffe hold it,
/// and flock, as rusty-leveldb does) until dropped.
pub struct LockHolder(Child);

impl LockHolder {
    /// `helper` is `env!("CARGO_BIN_EXE_hold_lock")` (only tests are given that path).
    pub fn hold(helper: &str, db: &Path) -> LockHolder {
        let mut child = Command::new(helper)
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting hold_lock");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked", "hold_lock did not take the lock");
        LockHolder(child)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}
