//! One attempt of a triggered definition, from a claimed job to its settlement: start the
//! process, keep the lease, pass progress, checkpoints and log lines on, stop it when asked,
//! and report how it ended.

use std::sync::Arc;
use std::time::Duration;

use errand_core::{LogStream, NewLogLine, Progress};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::definition::Definition;
use crate::host::{HostError, HostedJob, JobHost, RunSettlement, RunVerdict};
use crate::process::{self, RunEnd, RunEvent, RunSpec, StopReason};

use super::config::RunnerConfig;
use super::log_ship::LogShipper;
use super::settle_batch::SettleBatcher;
use super::verdict::{self, Disposition, Reported};

/// What every run of one runner shares.
pub(crate) struct RunContext {
    pub(crate) host: Arc<dyn JobHost>,
    pub(crate) config: Arc<RunnerConfig>,
    pub(crate) settler: SettleBatcher,
    /// Fires when the node shuts down: runs get their stop sequence.
    pub(crate) shutdown: CancellationToken,
}

/// The largest checkpoint a run may save (as JSON text): it comes back to a retry as
/// `ERRAND_CHECKPOINT`, and one environment variable holds at most 128 KiB.
pub(crate) const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;

/// Events buffered between the process and this task.
const EVENT_BUFFER: usize = 1024;

/// The process to start for one attempt.
pub(crate) fn spec_for(
    config: &RunnerConfig,
    def: &Definition,
    hosted: &HostedJob,
) -> (RunSpec, Option<Duration>) {
    let timeout = hosted
        .job
        .timeout_ms
        .map(Duration::from_millis)
        .or(def.timeout);
    let spec = RunSpec {
        program: def.entry.program.clone(),
        args: def.entry.args.clone(),
        working_dir: def.working_dir.clone(),
        env: super::env::job_env(config, def, hosted),
        stdin: serde_json::to_vec(&hosted.job.payload).unwrap_or_else(|_| b"null".to_vec()),
        limits: def.limits,
        user: def.user.clone(),
        timeout,
        stopping_wait_time: def.stopping_wait_time,
        limits_helper: config.limits_helper.clone(),
        max_line_bytes: config.max_line_bytes,
    };
    (spec, timeout)
}

/// Runs one attempt to its end and settles it.
///
/// `lease_lost` fires when a singleton's cluster lease was lost: the run is stopped and
/// left to its job's lease.
pub(crate) async fn run(
    ctx: Arc<RunContext>,
    def: Arc<Definition>,
    hosted: HostedJob,
    lease_lost: CancellationToken,
) {
    let id = hosted.job.id;
    let token = hosted.lease_token;
    let attempt = hosted.job.attempt;
    let (spec, timeout) = spec_for(&ctx.config, &def, &hosted);
    let (tx, mut events) = mpsc::channel(EVENT_BUFFER);
    let started = match process::start(spec, tx).await {
        Ok(p) => p,
        Err(e) => {
            let settlement = RunSettlement {
                id,
                lease_token: token,
                verdict: RunVerdict::Fail {
                    error: format!("could not start: {e}"),
                    retry_in: Some(def.backoff.base),
                    dead: false,
                },
                report: None,
            };
            if let Err(e) = ctx.settler.settle(settlement).await {
                tracing::warn!(job = %id, error = %e, "settling a run that could not start");
            }
            return;
        }
    };
    let stopper = started.stopper();
    let redactor = super::env::redactor(&ctx.config, &def, &hosted);
    let mut logs = LogShipper::new(ctx.host.clone(), id, attempt, token, redactor);
    let mut reported = Reported::default();
    let mut progress: Option<Progress> = None;
    let mut progress_due: Option<Instant> = None;
    let mut flush_due: Option<Instant> = None;
    let mut next_beat = Instant::now() + ctx.config.heartbeat_interval;
    let mut lost = false;
    let waiting = started.wait();
    tokio::pin!(waiting);
    let cancelled = ctx.host.cancelled(id);
    tokio::pin!(cancelled);
    let mut stop_sent = false;
    let outcome = loop {
        let beat_at = progress_due.map_or(next_beat, |p| p.min(next_beat));
        let flush_at = flush_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            outcome = &mut waiting => break outcome,
            event = events.recv() => match event {
                Some(event) => {
                    let stop = handle_event(
                        &ctx, &mut logs, &mut reported, &mut progress, &mut progress_due,
                        &mut flush_due, &hosted, event,
                    ).await;
                    if stop && !stop_sent {
                        lost = true;
                        stop_sent = true;
                        stopper.stop(StopReason::LeaseLost);
                    }
                }
                // The process side closed its events: only its end is left to wait for.
                None => break waiting.await,
            },
            _ = tokio::time::sleep_until(beat_at) => {
                next_beat = Instant::now() + ctx.config.heartbeat_interval;
                progress_due = None;
                let sent = ctx.host.heartbeat(id, token, progress.take(), None).await;
                if is_gone(&sent) && !stop_sent {
                    lost = true;
                    stop_sent = true;
                    stopper.stop(StopReason::LeaseLost);
                }
            }
            _ = tokio::time::sleep_until(flush_at), if flush_due.is_some() => {
                flush_due = None;
                if is_gone(&logs.flush().await) && !stop_sent {
                    lost = true;
                    stop_sent = true;
                    stopper.stop(StopReason::LeaseLost);
                }
            }
            _ = lease_lost.cancelled(), if !stop_sent => {
                lost = true;
                stop_sent = true;
                stopper.stop(StopReason::LeaseLost);
            }
            _ = &mut cancelled, if !stop_sent => {
                stop_sent = true;
                stopper.stop(StopReason::Cancelled);
            }
            _ = ctx.shutdown.cancelled(), if !stop_sent => {
                stop_sent = true;
                stopper.stop(StopReason::Shutdown);
            }
        }
    };
    // Lines and reports the process sent before it ended.
    while let Some(event) = events.recv().await {
        let _ = handle_event(
            &ctx,
            &mut logs,
            &mut reported,
            &mut progress,
            &mut progress_due,
            &mut flush_due,
            &hosted,
            event,
        )
        .await;
    }
    if !lost && is_gone(&logs.flush().await) {
        lost = true;
    }
    if lost {
        tracing::info!(job = %id, attempt, "run stopped: its lease is no longer this runner's");
        return;
    }
    match verdict::decide(
        &def,
        attempt,
        &outcome.end,
        outcome.report.exit_code,
        timeout,
        reported,
    ) {
        Disposition::Settle(verdict) => {
            let settlement = RunSettlement {
                id,
                lease_token: token,
                verdict,
                report: Some(outcome.report),
            };
            if let Err(e) = ctx.settler.settle(settlement).await {
                tracing::warn!(job = %id, attempt, error = %e, "settling a run failed");
            }
        }
        Disposition::Release => {
            if let Err(e) = ctx.host.release(id, token).await {
                tracing::warn!(job = %id, attempt, error = %e, "giving back a stopped run failed");
            }
        }
        Disposition::Abandon => {
            if matches!(outcome.end, RunEnd::Stopped(StopReason::Cancelled)) {
                tracing::info!(job = %id, attempt, "run stopped: the job was cancelled");
            }
        }
    }
}

/// Whether an answer says the attempt is no longer ours.
fn is_gone(answer: &Result<(), HostError>) -> bool {
    matches!(answer, Err(HostError::LeaseLost | HostError::NotFound))
}

/// Handles one event of the process; `true` when the attempt turned out to be lost.
#[allow(clippy::too_many_arguments)]
async fn handle_event(
    ctx: &RunContext,
    logs: &mut LogShipper,
    reported: &mut Reported,
    progress: &mut Option<Progress>,
    progress_due: &mut Option<Instant>,
    flush_due: &mut Option<Instant>,
    hosted: &HostedJob,
    event: RunEvent,
) -> bool {
    match event {
        RunEvent::Log(line) => {
            if line.stream == LogStream::Stderr {
                // The failure quotes it: redacted like the logged line.
                reported.last_stderr = Some(logs.redact(&line.line));
            }
            logs.push(line);
            if logs.len() >= ctx.config.log_flush_lines {
                *flush_due = None;
                return is_gone(&logs.flush().await);
            }
            if flush_due.is_none() {
                *flush_due = Some(Instant::now() + ctx.config.log_flush_interval);
            }
            false
        }
        RunEvent::Progress(mut p) => {
            // Progress, checkpoints, results and errors are shown by the API: a secret
            // value the script put in them is redacted like a log line.
            p.message = p.message.map(|m| logs.redact(&m));
            *progress = Some(p);
            if progress_due.is_none() {
                *progress_due = Some(Instant::now() + ctx.config.progress_delay);
            }
            false
        }
        RunEvent::Checkpoint { value, saved } => {
            if logs.finds_in_json(&value) {
                // The API shows checkpoints, and a redacted one would hand the retry other
                // state than the script saved: refuse it, as a too large one.
                let _ = saved.send(false);
                logs.push(NewLogLine {
                    at: errand_core::time::system_now(),
                    stream: LogStream::Stderr,
                    line: "errand: checkpoint not saved: it holds a secret value (the API shows checkpoints; save a reference instead)".into(),
                });
                return false;
            }
            let size = value.to_string().len();
            if size > MAX_CHECKPOINT_BYTES {
                // A retry gets its checkpoint in the environment, where the kernel caps one
                // variable at 128 KiB: a bigger one would stop every retry from starting.
                let _ = saved.send(false);
                logs.push(NewLogLine {
                    at: errand_core::time::system_now(),
                    stream: LogStream::Stderr,
                    line: format!(
                        "errand: checkpoint not saved: {size} bytes, at most {MAX_CHECKPOINT_BYTES} (keep large state elsewhere and checkpoint a reference to it)"
                    ),
                });
                return false;
            }
            let answer = ctx
                .host
                .heartbeat(
                    hosted.job.id,
                    hosted.lease_token,
                    progress.take(),
                    Some(value),
                )
                .await;
            *progress_due = None;
            let _ = saved.send(answer.is_ok());
            is_gone(&answer)
        }
        RunEvent::Result(mut value) => {
            logs.redact_json(&mut value);
            reported.result = Some(value);
            false
        }
        RunEvent::FailNoRetry(reason) => {
            reported.fail_no_retry = Some(logs.redact(&reason));
            false
        }
        RunEvent::BadControlLine(why) => {
            logs.push(NewLogLine {
                at: errand_core::time::system_now(),
                stream: LogStream::Stderr,
                line: format!(
                    "errand: ignored a control line: {}",
                    crate::process::control::bad_line_excerpt(&logs.redact(&why))
                ),
            });
            false
        }
    }
}
