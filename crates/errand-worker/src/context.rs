//! [`JobContext`]: what a handler knows about its attempt and can tell the server.

use std::sync::Arc;

use errand_core::{JobId, LeaseToken, Progress};
use errand_runner::host::{HostError, JobHost};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::lease::Lease;

/// The attempt a handler runs: its job, its fencing token, and the signals it should
/// watch. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    id: JobId,
    kind: String,
    queue: String,
    attempt: u32,
    max_attempts: u32,
    tags: Vec<String>,
    payload: Value,
    checkpoint: Option<Value>,
    lease_token: LeaseToken,
    lease: Arc<Lease>,
    shutdown: CancellationToken,
    host: Arc<dyn JobHost>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.inner.id)
            .field("kind", &self.inner.kind)
            .field("attempt", &self.inner.attempt)
            .field("lease_lost", &self.inner.lease.lost().is_cancelled())
            .finish_non_exhaustive()
    }
}

/// The parts of a claimed job a context is built from.
pub(crate) struct Claimed {
    pub id: JobId,
    pub kind: String,
    pub queue: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub tags: Vec<String>,
    pub payload: Value,
    pub checkpoint: Option<Value>,
    pub lease_token: LeaseToken,
}

impl JobContext {
    pub(crate) fn new(
        job: Claimed,
        host: Arc<dyn JobHost>,
        lease: Arc<Lease>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: job.id,
                kind: job.kind,
                queue: job.queue,
                attempt: job.attempt,
                max_attempts: job.max_attempts,
                tags: job.tags,
                payload: job.payload,
                checkpoint: job.checkpoint,
                lease_token: job.lease_token,
                lease,
                shutdown,
                host,
            }),
        }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.inner.id
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.inner.kind
    }

    /// The queue it was claimed from.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// This attempt's number, 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// Attempts the job has before it goes dead.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// The job's tags.
    pub fn tags(&self) -> &[String] {
        &self.inner.tags
    }

    /// The payload as JSON (the handler also gets it as its typed value).
    pub fn payload(&self) -> &Value {
        &self.inner.payload
    }

    /// The last checkpoint an earlier attempt saved, if any.
    pub fn checkpoint(&self) -> Option<&Value> {
        self.inner.checkpoint.as_ref()
    }

    /// The last checkpoint read as `T` (`None` when there is none or it is not a `T`).
    pub fn checkpoint_as<T: DeserializeOwned>(&self) -> Option<T> {
        self.inner
            .checkpoint
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
    }

    /// This attempt's lease token: the fencing token that writes elsewhere can carry so
    /// that a stale attempt's writes are refused.
    pub fn lease_token(&self) -> LeaseToken {
        self.inner.lease_token
    }

    /// Cancelled when this attempt lost its lease: a heartbeat answered that it expired and
    /// the job was taken by another worker, or the job was cancelled, or no heartbeat got
    /// through for a whole lease (the server was away, so another worker may have the
    /// job). Stop working; nothing this attempt returns is settled.
    pub fn lease_lost(&self) -> &CancellationToken {
        self.inner.lease.lost()
    }

    /// Whether the lease is lost (see [`lease_lost`](Self::lease_lost)).
    pub fn is_lease_lost(&self) -> bool {
        self.inner.lease.lost().is_cancelled()
    }

    /// Cancelled when the worker begins to shut down: the handler may finish early (within
    /// the grace period its result is still settled).
    pub fn shutting_down(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Reports progress now (one heartbeat, which also renews the lease).
    ///
    /// Progress is advice: a handler should go on when this fails with `Unavailable` (the
    /// worker's own heartbeats keep trying, and the lease is lost only when none got
    /// through for a whole lease), and stop on `LeaseLost`:
    ///
    /// ```no_run
    /// # async fn demo(ctx: errand_worker::JobContext) -> Result<(), errand_worker::JobError> {
    /// use errand_worker::HostError;
    /// match ctx.progress(50.0, "half way").await {
    ///     Err(HostError::LeaseLost | HostError::NotFound) => {
    ///         return Err(errand_worker::JobError::retry("lease lost")); // not settled
    ///     }
    ///     _ => {} // sent, or the server is away for now: carry on
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `LeaseLost` (the context's `lease_lost` fires too), or the host's error.
    pub async fn progress(
        &self,
        percent: f64,
        message: impl Into<String>,
    ) -> Result<(), HostError> {
        let progress = Progress {
            percent: Some(percent.clamp(0.0, 100.0)),
            message: Some(message.into()),
        };
        self.beat(Some(progress), None).await
    }

    /// Saves a checkpoint, durably when `Ok`: the next attempt reads it from
    /// [`checkpoint`](Self::checkpoint).
    ///
    /// # Errors
    /// `Refused` when `value` does not serialise, `LeaseLost` (the context's `lease_lost`
    /// fires too), or the host's error.
    pub async fn save_checkpoint(&self, value: &impl Serialize) -> Result<(), HostError> {
        let value = serde_json::to_value(value)
            .map_err(|e| HostError::Refused(format!("the checkpoint does not serialise: {e}")))?;
        self.beat(None, Some(value)).await
    }

    async fn beat(
        &self,
        progress: Option<Progress>,
        checkpoint: Option<Value>,
    ) -> Result<(), HostError> {
        let sent = tokio::time::Instant::now();
        let out = self
            .inner
            .host
            .heartbeat(self.inner.id, self.inner.lease_token, progress, checkpoint)
            .await;
        match out {
            Ok(()) => self.inner.lease.renewed(sent),
            Err(HostError::LeaseLost | HostError::NotFound) => self.inner.lease.lose(),
            Err(_) => {}
        }
        out
    }
}
