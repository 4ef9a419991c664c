//! The seam between the script host and whoever holds the jobs. `errand serve` implements
//! it over the engine; `errand worker` over the HTTP worker protocol. The dispatcher, the
//! process runtime and the continuous supervisor only ever talk to a [`JobHost`], so one
//! runtime serves both.

use std::time::Duration;

use errand_core::{Job, JobId, JobKind, LeaseToken, NewLogLine, Progress, QueueName, RunReport};
use serde_json::Value;

/// A job this host leased to the runner.
#[derive(Debug, Clone)]
pub struct HostedJob {
    /// The job as claimed (attempt already counted).
    pub job: Job,
    /// The fencing token of this attempt.
    pub lease_token: LeaseToken,
}

/// How the runner ends one attempt.
#[derive(Debug, Clone)]
pub enum RunVerdict {
    /// Exit code 0.
    Complete {
        /// The result the run sent on its control channel.
        result: Option<Value>,
    },
    /// Any other end.
    Fail {
        /// Why, in words an operator understands ("exit code 3", "killed by signal 9",
        /// "timed out after 30s").
        error: String,
        /// The definition's backoff for this attempt.
        retry_in: Option<Duration>,
        /// The run asked not to be retried.
        dead: bool,
    },
}

/// One attempt's end, as the runner reports it.
#[derive(Debug, Clone)]
pub struct RunSettlement {
    /// The job.
    pub id: JobId,
    /// The attempt's fencing token.
    pub lease_token: LeaseToken,
    /// Success or failure.
    pub verdict: RunVerdict,
    /// What the process did and cost.
    pub report: Option<RunReport>,
}

/// What a host can answer besides success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The lease is no longer this attempt's (expired and taken, or the job was cancelled):
    /// the run must stop and must not settle.
    #[error("the lease was lost")]
    LeaseLost,
    /// The job is gone.
    #[error("the job is gone")]
    NotFound,
    /// The host cannot be reached or cannot write now; the call may be repeated.
    #[error("the server is unavailable: {0}")]
    Unavailable(String),
    /// The host refused the call for a reason a retry will not cure.
    #[error("refused: {0}")]
    Refused(String),
}

/// What [`JobHost::settle_and_claim`] answers: how each settlement went, in the order
/// given, and the jobs claimed after them.
#[derive(Debug, Default)]
pub struct SettledAndClaimed {
    /// One result per settlement sent, in order.
    pub settled: Vec<Result<(), HostError>>,
    /// The jobs leased by the claim that followed.
    pub claimed: Vec<HostedJob>,
}

/// Whoever holds the jobs: the engine, or a server over HTTP.
#[async_trait::async_trait]
pub trait JobHost: Send + Sync + 'static {
    /// Leases up to `max` ready jobs of `kinds` from `queue`, waiting up to `wait` for one.
    async fn claim(
        &self,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<Vec<HostedJob>, HostError>;

    /// How long a lease this host claims lasts unless a heartbeat renews it, when the host
    /// knows: workers heartbeat at a fraction of it. `None` (the default) leaves them to
    /// read it from the claimed job's `lease_expires_at`.
    fn lease(&self) -> Option<Duration> {
        None
    }

    /// Extends a lease, recording progress and a checkpoint (durably when `Ok`).
    async fn heartbeat(
        &self,
        id: JobId,
        lease_token: LeaseToken,
        progress: Option<Progress>,
        checkpoint: Option<Value>,
    ) -> Result<(), HostError>;

    /// Ends attempts; the inner results say, in order, which took effect.
    async fn settle(
        &self,
        settlements: Vec<RunSettlement>,
    ) -> Result<Vec<Result<(), HostError>>, HostError>;

    /// Ends attempts, then claims as [`claim`](Self::claim) does: a worker's whole cycle.
    /// A host over a network does both in one round trip (and the server in one
    /// transaction); this default makes two calls, and when its claim fails after the
    /// settlements took effect, it answers their results and no job.
    ///
    /// # Errors
    /// The call as a whole failed: nothing is known of the settlements, which may be sent
    /// again (a settlement is idempotent for its token).
    async fn settle_and_claim(
        &self,
        settlements: Vec<RunSettlement>,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<SettledAndClaimed, HostError> {
        let settled = if settlements.is_empty() {
            Vec::new()
        } else {
            self.settle(settlements).await?
        };
        let claimed = match self.claim(queue, kinds, max, wait).await {
            Ok(jobs) => jobs,
            Err(e) if settled.is_empty() => return Err(e),
            Err(e) => {
                tracing::info!(error = %e, "the claim after settling failed; the settlements took effect");
                Vec::new()
            }
        };
        Ok(SettledAndClaimed { settled, claimed })
    }

    /// Stores log lines of a running attempt.
    async fn append_logs(
        &self,
        id: JobId,
        attempt: u32,
        lease_token: LeaseToken,
        lines: Vec<NewLogLine>,
    ) -> Result<(), HostError>;

    /// Gives a job back to its queue without counting the attempt: a run the runner
    /// stopped because it is shutting down. Uncounted, so a worker stopped often never
    /// pushes a job toward `dead`, and a job on its last attempt runs again. `LeaseLost`
    /// (or `NotFound`) when the token no longer holds the job: nothing was given back.
    async fn release(&self, id: JobId, lease_token: LeaseToken) -> Result<(), HostError>;

    /// Resolves when the host learns that `id` was cancelled, so the run stops at once
    /// rather than at its next heartbeat. Hosts without a push of their own never resolve:
    /// the heartbeat's `LeaseLost` then tells.
    async fn cancelled(&self, id: JobId) {
        let _ = id;
        std::future::pending::<()>().await
    }

    /// Holds (or renews) the named cluster-wide lease for `holder` for `ttl`; `false` when
    /// another holder has it. Singleton definitions run only while they hold theirs. Each
    /// claim loop or supervisor is a holder of its own, so that a definition reloaded on one
    /// node waits for its old loop to let go.
    async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, HostError>;

    /// Lets go of a lease `holder` holds.
    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), HostError>;
}
