//! How a process's end becomes an attempt's end, in words an operator understands.

use std::time::Duration;

use errand_core::RetryPolicy;

use crate::definition::Definition;
use crate::host::RunVerdict;
use crate::process::{RunEnd, StopReason};

/// What the runner does with an attempt once its process is gone.
#[derive(Debug, Clone)]
pub(crate) enum Disposition {
    /// Report success or failure.
    Settle(RunVerdict),
    /// Give the job back uncounted (errand is shutting down).
    Release,
    /// Say nothing: the attempt is no longer ours (cancelled, or the lease was lost).
    Abandon,
}

/// What the run said on its control channel, kept until its end.
#[derive(Debug, Default)]
pub(crate) struct Reported {
    /// `{"result": ...}`.
    pub result: Option<serde_json::Value>,
    /// `{"fail": "...", "retry": false}`.
    pub fail_no_retry: Option<String>,
    /// The last stderr line, quoted in a failure's message.
    pub last_stderr: Option<String>,
}

/// The longest stderr quote in a failure message.
const QUOTE_CHARS: usize = 300;

/// Decides an attempt's end from how its process ended and what it reported.
pub(crate) fn decide(
    def: &Definition,
    attempt: u32,
    end: &RunEnd,
    exit_code: Option<i32>,
    timeout: Option<Duration>,
    reported: Reported,
) -> Disposition {
    let retry_in = Some(
        RetryPolicy {
            base: def.backoff.base,
            max: def.backoff.max,
            jitter: 0.2,
        }
        .delay(attempt),
    );
    let because = |what: String| match &reported.last_stderr {
        Some(line) if !line.trim().is_empty() => {
            let quote: String = line.chars().take(QUOTE_CHARS).collect();
            format!("{what}; last stderr line: {quote}")
        }
        _ => what,
    };
    if let Some(reason) = reported.fail_no_retry.clone() {
        if !matches!(end, RunEnd::Stopped(_)) {
            return Disposition::Settle(RunVerdict::Fail {
                error: reason,
                retry_in: None,
                dead: true,
            });
        }
    }
    match end {
        RunEnd::Exited(0) => Disposition::Settle(RunVerdict::Complete {
            result: reported.result,
        }),
        RunEnd::Exited(code) => Disposition::Settle(RunVerdict::Fail {
            error: because(format!("exit code {code}")),
            retry_in,
            dead: false,
        }),
        RunEnd::Signalled(signal) => Disposition::Settle(RunVerdict::Fail {
            error: because(format!("killed by signal {}", signal_name(*signal))),
            retry_in,
            dead: false,
        }),
        RunEnd::TimedOut => Disposition::Settle(RunVerdict::Fail {
            error: format!(
                "timed out after {}",
                timeout.map_or_else(|| "its timeout".to_owned(), humantime_like)
            ),
            retry_in,
            dead: false,
        }),
        // It finished well while errand was shutting down: that is a success, not a run to
        // give back (and run again).
        RunEnd::Stopped(StopReason::Shutdown) if exit_code == Some(0) => {
            Disposition::Settle(RunVerdict::Complete {
                result: reported.result,
            })
        }
        RunEnd::Stopped(StopReason::Shutdown) => Disposition::Release,
        RunEnd::Stopped(_) => Disposition::Abandon,
    }
}

/// `SIGKILL (9)`, or the bare number for a signal without a name.
pub(crate) fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(s) => format!("{} ({signal})", s.as_str()),
        Err(_) => signal.to_string(),
    }
}

/// `30s`, `1.5s`, `250ms`.
fn humantime_like(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
