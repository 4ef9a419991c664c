//! How the CLI ends: one table of exit codes, and how an error is printed (its message and
//! causes, never a backtrace unless `--debug`; a JSON object on stderr with `--json`).
//!
//! The table is documented in `docs/cli.md`; a script can rely on it.

use std::process::ExitCode;

use errand_core::{JobId, JobState};

/// Why the CLI exits: each has its own code, the same for every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for a command that waits, the job succeeded.
    Success = 0,
    /// The server refused the request, or something else failed (the message says what).
    Failure = 1,
    /// Bad flags or arguments: nothing was sent (clap uses the same code).
    Usage = 2,
    /// No answer from the server at `--server`.
    Unreachable = 3,
    /// The job waited for ended dead (failed, out of attempts).
    JobDead = 4,
    /// The job waited for was cancelled.
    JobCancelled = 5,
    /// The wait's `--timeout` passed before the job ended.
    TimedOut = 6,
}

impl Exit {
    /// The stable name scripts see in the `--json` error object.
    pub fn code_name(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::Unreachable => "unreachable",
            Exit::JobDead => "job_dead",
            Exit::JobCancelled => "job_cancelled",
            Exit::TimedOut => "timed_out",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// A job waited for ended in a state other than succeeded (`dead` or `cancelled`).
#[derive(Debug, thiserror::Error)]
#[error("job {id} ended {state}")]
pub struct JobEnded {
    /// The job.
    pub id: JobId,
    /// Its final state.
    pub state: JobState,
}

/// A wait's timeout passed with the job still not ended.
#[derive(Debug, thiserror::Error)]
#[error("job {id} is still {state} after {waited}{because}")]
pub struct WaitTimedOut {
    /// The job.
    pub id: JobId,
    /// Its state at the timeout.
    pub state: JobState,
    /// The timeout, as given.
    pub waited: String,
    /// Why it has not started or ended, when known (with a leading separator), else empty.
    pub because: String,
}

/// Flags or arguments that make no sense together, found after clap parsed them.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Which exit an error means: a job's end, a timeout, a usage mistake, an unreachable
/// server, else a failure.
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(ended) = cause.downcast_ref::<JobEnded>() {
            return match ended.state {
                JobState::Cancelled => Exit::JobCancelled,
                _ => Exit::JobDead,
            };
        }
        if cause.downcast_ref::<WaitTimedOut>().is_some() {
            return Exit::TimedOut;
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return Exit::Usage;
        }
        if let Some(client) = cause.downcast_ref::<errand_client::ClientError>() {
            if matches!(client, errand_client::ClientError::Transport(_)) {
                return Exit::Unreachable;
            }
        }
    }
    Exit::Failure
}

/// Prints `err` on stderr as people read it (message, then each cause), or as one JSON
/// object with `json`; with `debug` the backtrace follows. Returns the exit code.
pub fn report(err: &anyhow::Error, json: bool, debug: bool) -> ExitCode {
    let exit = classify(err);
    if json {
        let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
        let mut body = serde_json::json!({
            "code": exit.code_name(),
            "message": err.to_string(),
            "causes": causes,
            "exit_code": exit as u8,
        });
        if let Some(client) = err
            .chain()
            .find_map(|c| c.downcast_ref::<errand_client::ClientError>())
        {
            if let (Some(status), Some(code)) = (client.status(), client.code()) {
                body["status"] = status.into();
                body["server_code"] = code.into();
            }
        }
        eprintln!("{}", serde_json::json!({ "error": body }));
    } else {
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    }
    if debug {
        eprintln!("{}", err.backtrace());
    }
    exit.into()
}
