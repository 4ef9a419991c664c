//! What a handler answers when it fails, and what the worker answers when it cannot run.

use std::fmt;
use std::time::Duration;

/// How a handler's failure ends the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Try again: after `Some(delay)`, or after the server's backoff for the queue when
    /// `None`.
    Retry(Option<Duration>),
    /// Do not try again: the job goes dead at once, whatever attempts it has left.
    Dead,
}

/// A handler's failure: a message and whether the job may be tried again.
///
/// Any `std::error::Error` converts into a retryable `JobError` (so `?` works in a
/// handler); say [`JobError::dead`] for a failure that no retry will cure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    message: String,
    failure: Failure,
}

impl JobError {
    /// A failure retried after the server's backoff (the queue's policy).
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            failure: Failure::Retry(None),
        }
    }

    /// A failure retried after `delay` (when the job has attempts left). A delay longer
    /// than 30 days is sent as 30 days: the server refuses a retry past the year 9999 for
    /// the whole settle call it comes in.
    pub fn retry_in(message: impl Into<String>, delay: Duration) -> Self {
        Self {
            message: message.into(),
            failure: Failure::Retry(Some(delay)),
        }
    }

    /// A failure that no retry will cure: the job goes dead now.
    pub fn dead(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            failure: Failure::Dead,
        }
    }

    /// What the job's `error` will say.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Retry or dead.
    pub fn failure(&self) -> Failure {
        self.failure
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for JobError {
    /// Any error is a retryable failure with its message and causes.
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        Self::retry(message)
    }
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `run` was called with no handler registered.
    #[error("no handler is registered: call register::<Kind, _>(handler) first")]
    NoHandlers,
    /// Two handlers for one kind.
    #[error("kind `{0}` has two handlers")]
    DuplicateKind(String),
    /// A kind or queue name the server would refuse.
    #[error("{0}")]
    BadName(String),
}
