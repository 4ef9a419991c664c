//! One run of a definition as a real process.
//!
//! The dispatcher builds a [`RunSpec`] (program, arguments, the complete environment, the
//! payload, limits, timeout) and calls [`start`]. From then on this module owns the process:
//!
//! - it is started without a shell, in a process group of its own, with exactly the
//!   environment of the spec plus `ERRAND_CONTROL` and `ERRAND_SHUTDOWN_FILE` ([`spawn`]);
//! - the payload is written to its stdin, which is then closed;
//! - its stdout and stderr lines become [`RunEvent::Log`] events ([`logs`]);
//! - the JSON lines it writes to `$ERRAND_CONTROL` become progress, checkpoint, result and
//!   fail events ([`control`]);
//! - a timeout or [`Stopper::stop`] runs the stop sequence: shutdown file, SIGTERM to the
//!   group, `stopping_wait_time`, SIGKILL to the group ([`stop`]);
//! - when the main process ends, for any reason, whatever is left of its group is killed,
//!   then the process is reaped with its own CPU time and peak memory ([`usage`]);
//! - resource limits and another user go through the errand binary's hidden
//!   `__run-limited` subcommand ([`limits`]).
//!
//! [`RunningProcess::wait`] answers once the process and its group are gone, every log line
//! and control line has been handed to the events channel, and the run's private directory
//! is removed.

pub mod control;
pub mod limits;
pub mod logs;
mod spawn;
mod stop;
mod supervisor;
pub mod usage;

use std::path::PathBuf;
use std::time::Duration;

use errand_core::{NewLogLine, Progress, RunReport};
use tokio::sync::{mpsc, oneshot, watch};

use crate::definition::ResourceLimits;

pub use control::{CONTROL_ENV, MAX_CONTROL_LINE_BYTES, SHUTDOWN_FILE_ENV};
pub use spawn::SpawnError;

/// Everything needed to start one run: built by the dispatcher from a definition and a
/// claimed job, so that this module never reads a definition or a job itself. Its `{:?}`
/// names the environment's variables without their values (secrets among them).
#[derive(Clone)]
pub struct RunSpec {
    /// The program: an absolute path, or one relative to `working_dir`. Never a shell line.
    pub program: PathBuf,
    /// Its arguments (not including the program itself).
    pub args: Vec<String>,
    /// The directory it starts in.
    pub working_dir: PathBuf,
    /// The COMPLETE environment: nothing of the server's environment is inherited.
    /// `ERRAND_CONTROL` and `ERRAND_SHUTDOWN_FILE` are added (and win over entries here).
    pub env: Vec<(String, String)>,
    /// Written to stdin, which is then closed (the payload as JSON). Empty: stdin is
    /// `/dev/null`.
    pub stdin: Vec<u8>,
    /// Operating-system limits; any set one starts the program through `limits_helper`.
    pub limits: ResourceLimits,
    /// Run as this user (errand must run as root); starts through `limits_helper`.
    pub user: Option<String>,
    /// Longest the run may take before the stop sequence ends it ([`RunEnd::TimedOut`]).
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL in the stop sequence.
    pub stopping_wait_time: Duration,
    /// The errand binary, whose `__run-limited` subcommand applies `limits` and `user` and
    /// then executes the program. Needed only when limits or a user are set.
    pub limits_helper: Option<PathBuf>,
    /// Longer stdout or stderr lines are split into lines of at most this many bytes (at a
    /// character boundary when the text is UTF-8). Values below 4 count as 4.
    pub max_line_bytes: usize,
}

impl std::fmt::Debug for RunSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("RunSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("working_dir", &self.working_dir)
            .field("env", &env)
            .field("stdin_bytes", &self.stdin.len())
            .field("limits", &self.limits)
            .field("user", &self.user)
            .field("timeout", &self.timeout)
            .field("stopping_wait_time", &self.stopping_wait_time)
            .field("limits_helper", &self.limits_helper)
            .field("max_line_bytes", &self.max_line_bytes)
            .finish()
    }
}

/// What a run says while it runs, in the order it said it (per stream).
#[derive(Debug)]
pub enum RunEvent {
    /// A stdout or stderr line.
    Log(NewLogLine),
    /// A progress line from the control channel.
    Progress(Progress),
    /// A checkpoint from the control channel. The next control line is not read until
    /// `saved` is answered: `true` once the checkpoint is stored durably, `false` if it
    /// could not be (dropping the sender counts as `false`).
    Checkpoint {
        /// The checkpoint, any JSON value.
        value: serde_json::Value,
        /// Answer here once the checkpoint is stored (or was not).
        saved: oneshot::Sender<bool>,
    },
    /// The run's result (the last one sent wins).
    Result(serde_json::Value),
    /// The run asks to fail without retries, with this reason.
    FailNoRetry(String),
    /// A control line that is not one of the above: the text says what was wrong and
    /// quotes the whole line. The dispatcher logs it as an ERROR line, redacted and then
    /// cut to an excerpt ([`control::bad_line_excerpt`]).
    BadControlLine(String),
}

/// Why a run was asked to stop from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The job was cancelled.
    Cancelled,
    /// The server or worker is shutting down.
    Shutdown,
    /// The attempt's lease is no longer ours.
    LeaseLost,
    /// The definition was removed (a continuous instance).
    Removed,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The process exited by itself with this code (0 is success).
    Exited(i32),
    /// The process was ended by this signal, not by errand (a limit, the OOM killer, a
    /// crash, someone else's kill).
    Signalled(i32),
    /// The timeout ran out and the stop sequence ended it. The report says whether it
    /// exited during the stopping wait or was killed.
    TimedOut,
    /// [`Stopper::stop`] was called before the process ended and the stop sequence ended
    /// it. The report says whether it exited during the stopping wait or was killed.
    Stopped(StopReason),
}

/// The end of a run: how it ended and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// How it ended.
    pub end: RunEnd,
    /// Exit code or signal, wall time, CPU time and peak memory.
    pub report: RunReport,
}

/// Asks a running process to stop; cheap to clone and hand to whoever may need to stop
/// the run (the lease keeper, the shutdown path, the catalog).
#[derive(Debug, Clone)]
pub struct Stopper {
    tx: std::sync::Arc<watch::Sender<Option<StopReason>>>,
}

impl Stopper {
    fn new() -> (Self, watch::Receiver<Option<StopReason>>) {
        let (tx, rx) = watch::channel(None);
        (
            Self {
                tx: std::sync::Arc::new(tx),
            },
            rx,
        )
    }

    /// Starts the stop sequence (shutdown file, SIGTERM, the stopping wait, SIGKILL).
    /// The first reason given wins; later calls, and calls after the run ended, do nothing.
    pub fn stop(&self, reason: StopReason) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }
}

/// A started run. Dropping it does not stop the process: the run is still supervised
/// (its timeout still applies) and [`Stopper`]s still work.
#[derive(Debug)]
pub struct RunningProcess {
    pid: u32,
    stopper: Stopper,
    supervisor: tokio::task::JoinHandle<RunOutcome>,
}

impl RunningProcess {
    /// The main process's id, which is also its process group's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A handle that stops the run.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until the run is over: the process reaped, nothing of its group left, every
    /// event sent, its private directory removed.
    pub async fn wait(self) -> RunOutcome {
        match self.supervisor.await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels the supervisor.
            Err(_) => RunOutcome {
                end: RunEnd::Stopped(StopReason::Shutdown),
                report: RunReport::default(),
            },
        }
    }
}

/// Starts a run: the process is running when this returns, and its events flow into
/// `events` (a bounded channel: a full channel slows the run's output down, it never
/// buffers without bound).
///
/// Drain `events` while awaiting [`RunningProcess::wait`]: the run cannot end while its
/// output waits for room in the channel or a checkpoint waits for its answer. The channel
/// closes (`recv` gives `None`, unless the caller kept a sender of its own) once the run is
/// over, after every event was sent.
///
/// # Errors
/// [`SpawnError`] when the process could not be started: the program or the working
/// directory is missing or unusable, the control channel could not be made, limits or a
/// user were asked for without a helper, or the user is unknown or errand is not root.
pub async fn start(
    spec: RunSpec,
    events: mpsc::Sender<RunEvent>,
) -> Result<RunningProcess, SpawnError> {
    let started = spawn::spawn(&spec)?;
    let pid = started.pid;
    let (stopper, stop_rx) = Stopper::new();
    let supervisor = tokio::spawn(supervisor::supervise(started, spec, events, stop_rx));
    Ok(RunningProcess {
        pid,
        stopper,
        supervisor,
    })
}
