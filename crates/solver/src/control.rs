//! Requests from outside the loop: stop, or snapshot and go on. Flags the solver polls
//! between iterations, settable from signal handlers (SIGINT stops, SIGHUP snapshots).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the loop should do when a request flag is raised (Caffe's `SolverAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverAction {
    /// Ignore the request.
    None,
    /// Write a snapshot and stop.
    Stop,
    /// Write a snapshot and go on.
    Snapshot,
}

/// Two flags shared with whoever may interrupt the run (a signal handler, a UI thread).
#[derive(Debug, Clone, Default)]
pub struct SolverControl {
    stop: Arc<AtomicBool>,
    snapshot: Arc<AtomicBool>,
}

impl SolverControl {
    /// Fresh flags, none raised.
    pub fn new() -> SolverControl {
        SolverControl::default()
    }

    /// Asks the solver to snapshot and stop after the current iteration.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Asks the solver to snapshot after the current iteration and go on.
    pub fn request_snapshot(&self) {
        self.snapshot.store(true, Ordering::SeqCst);
    }

    /// Takes the pending request (clearing it): stop wins over snapshot.
    pub fn take(&self) -> SolverAction {
        if self.stop.swap(false, Ordering::SeqCst) {
            SolverAction::Stop
        } else if self.snapshot.swap(false, Ordering::SeqCst) {
            SolverAction::Snapshot
        } else {
            SolverAction::None
        }
    }

    /// Routes SIGINT to "snapshot and stop" and SIGHUP to "snapshot and go on", Caffe's
    /// defaults (`--sigint_effect stop --sighup_effect snapshot`). Unix only.
    pub fn install_signal_handlers(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGHUP, SIGINT};
            signal_hook::flag::register(SIGINT, Arc::clone(&self.stop))?;
            signal_hook::flag::register(SIGHUP, Arc::clone(&self.snapshot))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_taken_once_and_stop_wins() {
        let c = SolverControl::new();
        assert_eq!(c.take(), SolverAction::None);
        c.request_snapshot();
        c.clone().request_stop();
        assert_eq!(c.take(), SolverAction::Stop);
        assert_eq!(c.take(), SolverAction::Snapshot);
        assert_eq!(c.take(), SolverAction::None);
    }

    #[cfg(unix)]
    #[test]
    fn sighup_raises_the_snapshot_flag() {
        let c = SolverControl::new();
        c.install_signal_handlers().unwrap();
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        assert_eq!(c.take(), SolverAction::Snapshot);
    }
}
