//! What the rescuer does with an attempt it finds stuck. Both stores select the stuck rows
//! in their own SQL and apply this one decision, so a vanished worker and an overrun are
//! handled alike everywhere.

use std::time::Duration;

use crate::{AfterFailure, AttemptOutcome, RetryPolicy};

/// Why a running attempt is stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stuck {
    /// Its lease ran out: the worker stopped heartbeating (crashed, killed, partitioned).
    LeaseExpired,
    /// It ran longer than the job's timeout, in milliseconds.
    TimedOut {
        /// The job's timeout.
        timeout_ms: i64,
    },
}

/// The rescuer's verdict on one stuck attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescue {
    /// Where the job goes.
    pub after: AfterFailure,
    /// How the attempt is recorded.
    pub outcome: AttemptOutcome,
    /// The error recorded on the job and the attempt.
    pub message: String,
}

impl Rescue {
    /// Decides the fate of attempt `attempt` of `max_attempts`. A vanished worker's job goes
    /// back at once (the attempt still counts: a job that kills its worker must not loop
    /// forever); an attempt that overran its timeout is a failure and backs off.
    pub fn decide(stuck: Stuck, attempt: u32, max_attempts: u32, policy: &RetryPolicy) -> Self {
        let (retry_in, outcome, message) = match stuck {
            Stuck::LeaseExpired => (
                Some(Duration::ZERO),
                AttemptOutcome::LeaseExpired,
                "lease expired: the worker stopped heartbeating".to_string(),
            ),
            Stuck::TimedOut { timeout_ms } => (
                None,
                AttemptOutcome::TimedOut,
                format!("timed out after {timeout_ms} ms"),
            ),
        };
        Self {
            after: AfterFailure::decide(attempt, max_attempts, retry_in, false, policy),
            outcome,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> RetryPolicy {
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn expired_lease_retries_at_once_and_counts_the_attempt() {
        let r = Rescue::decide(Stuck::LeaseExpired, 1, 3, &no_jitter());
        assert_eq!(r.after, AfterFailure::RetryIn(Duration::ZERO));
        assert_eq!(r.outcome, AttemptOutcome::LeaseExpired);
        let last = Rescue::decide(Stuck::LeaseExpired, 3, 3, &no_jitter());
        assert_eq!(last.after, AfterFailure::Dead);
    }

    #[test]
    fn timeout_backs_off_like_a_failure() {
        let r = Rescue::decide(Stuck::TimedOut { timeout_ms: 500 }, 2, 3, &no_jitter());
        assert_eq!(r.after, AfterFailure::RetryIn(Duration::from_secs(2)));
        assert_eq!(r.outcome, AttemptOutcome::TimedOut);
        assert_eq!(r.message, "timed out after 500 ms");
    }
}
