//! Signals to a run's process group: the stop sequence's SIGTERM and SIGKILL, and the
//! final SIGKILL that leaves no descendant of a run behind.
//!
//! The group is always signalled while its leader (the run's main process) is not yet
//! reaped: until then its id cannot be reused, so the signal cannot reach another group.

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Sends `signal` to every process of the group `pgid`. A group already gone is fine.
pub(crate) fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid = pgid.as_raw(), %signal, error = %e, "could not signal a run's process group")
        }
    }
}

/// Asks the whole group to stop.
pub(crate) fn terminate_group(pgid: Pid) {
    signal_group(pgid, Signal::SIGTERM);
}

/// Kills whatever is left of the group.
pub(crate) fn kill_group(pgid: Pid) {
    signal_group(pgid, Signal::SIGKILL);
}
