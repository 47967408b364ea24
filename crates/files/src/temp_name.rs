//! Names of the temporary files and folders of atomic writes, `.<name>.tmp-<pid>-<host>-<nonce>`
//! (plus `.<extension>` of the target, for writers that pick a format by it): unique per write.

use std::hash::BuildHasher;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A parsed temporary name: which target it stands for, and which process on which host made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TempName {
    /// The file name of the target (`w_iter_5.caffemodel`).
    pub target: String,
    pub pid: u32,
    /// A 32-bit hash of the host name: writers on other hosts sharing a folder are told apart.
    pub host: u32,
    /// Unique per write within a process.
    pub nonce: u64,
}

impl TempName {
    /// A name for a new write of `target` (a file name) by this process on this host.
    pub fn fresh(target: &str) -> TempName {
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let nonce = std::collections::hash_map::RandomState::new()
            .hash_one(WRITES.fetch_add(1, Ordering::Relaxed));
        TempName {
            target: target.to_string(),
            pid: std::process::id(),
            host: this_host(),
            nonce,
        }
    }

    /// The file name: `.<target>.tmp-<pid>-<host, 8 hex>-<nonce, 16 hex>[.<extension>]`.
    pub fn file_name(&self) -> String {
        let ext = extension(&self.target)
            .map(|e| format!(".{e}"))
            .unwrap_or_default();
        format!(
            ".{}.tmp-{}-{:08x}-{:016x}{ext}",
            self.target, self.pid, self.host, self.nonce
        )
    }

    /// Reads a name [`TempName::file_name`] made; `None` for any other name.
    pub fn parse(name: &str) -> Option<TempName> {
        let name = name.strip_prefix('.')?;
        // The target's extension may itself hold ".tmp-": try each place from the right.
        name.rmatch_indices(".tmp-")
            .find_map(|(i, _)| Self::parse_at(&name[..i], &name[i + 5..]))
    }

    fn parse_at(target: &str, rest: &str) -> Option<TempName> {
        let (fields, ext) = match rest.split_once('.') {
            Some((fields, ext)) => (fields, Some(ext)),
            None => (rest, None),
        };
        if target.is_empty() || ext != extension(target) {
            return None;
        }
        let mut parts = fields.split('-');
        let (pid, host, nonce) = (parts.next()?, parts.next()?, parts.next()?);
        let digits = |s: &str, n: usize, radix: u32| {
            (s.len() <= n && !s.is_empty() && s.chars().all(|c| c.is_digit(radix))).then_some(())
        };
        digits(pid, 10, 10)?;
        (host.len() == 8).then_some(())?;
        digits(host, 8, 16)?;
        (nonce.len() == 16).then_some(())?;
        digits(nonce, 16, 16)?;
        if parts.next().is_some() || host.chars().any(|c| c.is_ascii_uppercase()) {
            return None;
        }
        Some(TempName {
            target: target.to_string(),
            pid: pid.parse().ok()?,
            host: u32::from_str_radix(host, 16).ok()?,
            nonce: u64::from_str_radix(nonce, 16).ok()?,
        })
    }

    /// Whether the write was made on this host (only then can its process be checked).
    pub fn is_from_this_host(&self) -> bool {
        self.host == this_host()
    }
}

/// Whether `name` is the temporary name of an atomic write (so listings can leave it out).
pub fn is_temp_name(name: &str) -> bool {
    TempName::parse(name).is_some()
}

fn extension(target: &str) -> Option<&str> {
    Path::new(target).extension().and_then(|e| e.to_str())
}

/// FNV-1a of the host name (hand-written: four lines, and no hash crate keeps it stable).
fn this_host() -> u32 {
    static HOST: OnceLock<u32> = OnceLock::new();
    *HOST.get_or_init(|| {
        host_name().bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    })
}

#[cfg(unix)]
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(not(unix))]
fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_keep_the_target_extension_last() {
        let t = TempName {
            target: "scatter.png".into(),
            pid: 42,
            host: 0xab,
            nonce: 7,
        };
        assert_eq!(
            t.file_name(),
            ".scatter.png.tmp-42-000000ab-0000000000000007.png"
        );
        let plain = TempName {
            target: "CURRENT".into(),
            ..t.clone()
        };
        assert_eq!(
            plain.file_name(),
            ".CURRENT.tmp-42-000000ab-0000000000000007"
        );
    }

    #[test]
    fn only_our_names_parse() {
        let check = |name: &str, ok: bool| assert_eq!(is_temp_name(name), ok, "{name}");
        check(".log.csv.tmp-4242-0badc0de-00ff00ff00ff00ff.csv", true);
        check(".pairs_leveldb.tmp-7-0badc0de-00ff00ff00ff00ff", true);
        check(".log.csv.tmp-4242-0badc0de-00ff00ff00ff00ff", false); // extension missing
        check(".log.csv.tmp-4242-0badc0de-00ff00ff00ff00ff.txt", false); // another extension
        check(".log.csv.tmp-4242-0badc0de-00ff00ff00ff00f.csv", false); // 15 hex digits
        check(".log.csv.tmp-42x-0badc0de-00ff00ff00ff00ff.csv", false);
        check(".log.csv.tmp-4242-0BADC0DE-00ff00ff00ff00ff.csv", false);
        check(".tmp-4242-0badc0de-00ff00ff00ff00ff", false); // no target
        check("log.csv.tmp-4242-0badc0de-00ff00ff00ff00ff.csv", false); // not hidden
        check(".s_iter_4.caffemodel.tmp4242", false); // an older writer's name
        check("notes.part", false);
        check("log.csv", false);
    }

    proptest! {
        #[test]
        fn fresh_names_parse_back(target in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,19}", pid: u32, host: u32, nonce: u64) {
            let t = TempName { target: target.clone(), pid, host, nonce };
            let name = t.file_name();
            prop_assert_eq!(TempName::parse(&name), Some(t));
        }

        #[test]
        fn parsing_never_panics(name in "\\PC{0,60}") {
            let _ = TempName::parse(&name);
        }
    }

    #[test]
    fn fresh_names_differ_and_are_from_here() {
        let a = TempName::fresh("w.caffemodel");
        let b = TempName::fresh("w.caffemodel");
        assert_ne!(a.file_name(), b.file_name());
        assert!(a.is_from_this_host());
        assert_eq!(a.pid, std::process::id());
    }
}
