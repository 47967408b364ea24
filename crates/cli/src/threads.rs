//! `--threads`: sizes the global rayon pool that the CPU backend computes on.

use anyhow::{Result, bail};

/// Builds the global pool with `threads` workers (default: rayon's, all cores) and returns
/// the number in use.
pub fn configure(threads: Option<usize>) -> Result<usize> {
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads 0: expected at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {n}: cannot start the thread pool ({e})"))?;
    }
    Ok(rayon::current_num_threads())
}

/// Runs `f` on a thread of the global pool (`rayon::scope` runs its body on a worker), so the
/// parallel work `f` starts is shared with that thread rather than handed over from this one.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
