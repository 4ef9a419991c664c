//! Seeing one started run through to its end: the payload in, the output and control
//! lines out, the timeout and the stop sequence, the final kill of its group, the reaping,
//! and the removal of its private directory.

use std::time::Duration;

use errand_core::LogStream;
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::spawn::Started;
use super::{control, logs, stop, usage, RunEnd, RunEvent, RunOutcome, RunSpec, StopReason};

/// Once the group is gone, how long a silent output pipe is still waited on (only a
/// process that left the group can hold it open).
const OUTPUT_IDLE_AFTER_END: Duration = Duration::from_secs(2);

/// Runs in its own task from [`super::start`] until the run is over.
pub(crate) async fn supervise(
    started: Started,
    spec: RunSpec,
    events: mpsc::Sender<RunEvent>,
    mut stop_rx: watch::Receiver<Option<StopReason>>,
) -> RunOutcome {
    let Started {
        pid,
        mut child,
        started_at,
        control,
        control_reader,
        mut exit,
        stdin,
        stdout,
        stderr,
    } = started;
    let pgid = Pid::from_raw(pid as i32);
    // Should this task be dropped unfinished (the runtime shutting down), the group dies
    // with it rather than run on unsupervised.
    let mut guard = KillOnDrop(Some(pgid));
    let finish = CancellationToken::new();
    let max_line = spec.max_line_bytes;
    let stdout_task = tokio::spawn(logs::capture(
        stdout,
        LogStream::Stdout,
        max_line,
        events.clone(),
        finish.clone(),
        OUTPUT_IDLE_AFTER_END,
    ));
    let stderr_task = tokio::spawn(logs::capture(
        stderr,
        LogStream::Stderr,
        max_line,
        events.clone(),
        finish.clone(),
        OUTPUT_IDLE_AFTER_END,
    ));
    // The last sender goes with the readers: the events channel closes when the run is over.
    let control_task = tokio::spawn(control::read_control(
        control_reader,
        events,
        finish.clone(),
    ));
    let stdin_task = stdin.map(|mut pipe| {
        let payload = spec.stdin;
        tokio::spawn(async move {
            // A run that exits without reading its payload closes the pipe: not an error.
            let _ = pipe.write_all(&payload).await;
            let _ = pipe.shutdown().await;
        })
    });

    let deadline = spec
        .timeout
        .map(|t| tokio::time::Instant::from_std(started_at) + t);
    let stopped = tokio::select! {
        () = exit.exited() => None,
        () = sleep_until(deadline) => Some(RunEnd::TimedOut),
        reason = stop_requested(&mut stop_rx) => Some(RunEnd::Stopped(reason)),
    };
    if stopped.is_some() {
        if let Err(e) = control.create_shutdown_file() {
            tracing::warn!(pid, error = %e, "could not create a run's shutdown file");
        }
        stop::terminate_group(pgid);
        if tokio::time::timeout(spec.stopping_wait_time, exit.exited())
            .await
            .is_err()
        {
            stop::kill_group(pgid);
            exit.exited().await;
        }
    }
    // The main process is gone but not yet reaped, so its group id is still its own:
    // nothing of the group may outlive it.
    stop::kill_group(pgid);
    // From the reap on, the id is free to be reused: never signal it again.
    guard.0 = None;
    let report = usage::reap(&mut child, started_at).await;

    finish.cancel();
    for task in [stdout_task, stderr_task, control_task] {
        if let Err(e) = task.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    if let Some(task) = stdin_task {
        task.abort();
    }
    control.remove();

    let end = stopped.unwrap_or(match (report.exit_code, report.signal) {
        (Some(code), _) => RunEnd::Exited(code),
        (None, Some(signal)) => RunEnd::Signalled(signal),
        // Not reaped normally (already logged): say it failed.
        (None, None) => RunEnd::Exited(-1),
    });
    RunOutcome { end, report }
}

/// Kills the group when dropped while still armed.
struct KillOnDrop(Option<Pid>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            stop::kill_group(pgid);
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The first stop reason given; never, if every [`super::Stopper`] is dropped unused.
async fn stop_requested(rx: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
    loop {
        if let Some(reason) = *rx.borrow_and_update() {
            return reason;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
