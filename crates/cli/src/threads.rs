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
