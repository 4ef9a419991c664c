//! Noticing that a run's main process ended, and reaping it with what it cost.
//!
//! One mechanism reaps runs: this one. Runs are started with `std::process` (never
//! `tokio::process`, whose SIGCHLD-driven reaper would call `waitpid` on them and lose
//! their resource usage), and reaped with `wait4(2)`, which returns the exit status with
//! the process's own CPU time and peak memory (and that of the descendants it waited for).
//! tokio's reaper only ever waits on pids it spawned itself, so the two never race.
//!
//! The end is noticed without a thread per run and without reaping: a pidfd
//! (`pidfd_open(2)`, Linux 5.3+) becomes readable when the process exits and tokio awaits
//! it like a socket. Where pidfds are not available, every SIGCHLD checks the run with
//! `waitid(WNOWAIT)`. Either way the process stays a zombie until [`reap`]: its id, which
//! is also its group's id, cannot be reused while errand still signals that group.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

use errand_core::RunReport;
use nix::errno::Errno;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::signal::unix::{signal, Signal, SignalKind};
use wait4::Wait4;

/// Tells when a child process has exited, leaving it unreaped.
#[derive(Debug)]
pub struct ExitWatch {
    pid: Pid,
    how: How,
}

#[derive(Debug)]
enum How {
    Pidfd(AsyncFd<OwnedFd>),
    Sigchld(Signal),
}

impl ExitWatch {
    /// Watches the child `pid` through a pidfd, or through SIGCHLD where pidfds are not
    /// available.
    ///
    /// # Errors
    /// Neither could be set up (no tokio runtime, or the process is not ours).
    pub fn new(pid: u32) -> io::Result<Self> {
        let raw = i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let pidfd = rustix::process::Pid::from_raw(raw)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
            .and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                    .map_err(io::Error::from)
            });
        let how = match pidfd {
            Ok(fd) => How::Pidfd(register(fd)?),
            Err(e) => {
                tracing::debug!(error = %e, "no pidfd; watching runs through SIGCHLD");
                How::Sigchld(signal(SignalKind::child())?)
            }
        };
        Ok(Self {
            pid: Pid::from_raw(raw),
            how,
        })
    }

    /// Watches `pid` through SIGCHLD only, as on a kernel without pidfds.
    ///
    /// # Errors
    /// No tokio runtime.
    pub fn with_sigchld(pid: u32) -> io::Result<Self> {
        let raw = i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(Self {
            pid: Pid::from_raw(raw),
            how: How::Sigchld(signal(SignalKind::child())?),
        })
    }

    /// Returns once the process has exited (at once if it already has). The process is
    /// not reaped. Cancel-safe, and may be called again.
    pub async fn exited(&mut self) {
        match &mut self.how {
            How::Pidfd(fd) => {
                // Readiness is never cleared: an exited process stays readable.
                if let Err(e) = fd.readable().await {
                    tracing::warn!(pid = self.pid.as_raw(), error = %e, "waiting on a pidfd failed");
                }
            }
            How::Sigchld(sigchld) => {
                // The stream is registered before the check, so an exit between the two
                // still wakes the loop.
                while !has_exited(self.pid) {
                    if sigchld.recv().await.is_none() {
                        return;
                    }
                }
            }
        }
    }
}

/// Registers a pidfd with tokio's reactor.
///
/// `AsyncFd::with_interest` is deprecated because a type whose `as_raw_fd` may change, or
/// whose descriptor may be closed under the registration, makes it unsound; its replacement
/// is `unsafe`, which this workspace forbids. An `OwnedFd` moved into the `AsyncFd` is
/// exactly the case that is sound: it is open and the same descriptor until the `AsyncFd`
/// drops it.
#[allow(deprecated)]
fn register(pidfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::with_interest(pidfd, Interest::READABLE)
}

/// Whether the child `pid` has exited (or is not ours to wait for), without reaping it.
fn has_exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::StillAlive) => return false,
            Ok(_) => return true,
            Err(Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Reaps a child that [`ExitWatch::exited`] saw end, and reports how it ended and what it
/// cost since `started`.
pub async fn reap(child: &mut std::process::Child, started: Instant) -> RunReport {
    let duration_ms = millis(started.elapsed());
    let usage = loop {
        match child.try_wait4() {
            Ok(Some(usage)) => break Some(usage),
            // Only after `exited` and a SIGKILL to the group: a zombie is reaped at once,
            // and anything else is about to become one.
            Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
            Err(e) => {
                tracing::warn!(pid = child.id(), error = %e, "reaping a run failed");
                break None;
            }
        }
    };
    let Some(usage) = usage else {
        return RunReport {
            duration_ms,
            ..RunReport::default()
        };
    };
    use std::os::unix::process::ExitStatusExt;
    RunReport {
        exit_code: usage.status.code(),
        signal: usage.status.signal(),
        duration_ms,
        cpu_ms: millis(usage.rusage.utime + usage.rusage.stime),
        max_rss_bytes: usage.rusage.maxrss,
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
