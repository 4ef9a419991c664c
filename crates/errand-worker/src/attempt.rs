//! One attempt: the handler in a task of its own, the heartbeats that keep its lease, its
//! timeout, and the hand-off of its outcome to the settler.
//!
//! Each running attempt has an entry in [`Shared::running`]; whoever takes the entry out
//! owns the job's end. The attempt takes it when its handler is done and then settles;
//! shutdown takes it when the grace period is over and then gives the job back. Never both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use errand_core::{JobId, LeaseToken};
use errand_runner::host::{HostedJob, JobHost, RunSettlement, RunVerdict};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::{Claimed, JobContext};
use crate::error::Failure;
use crate::handler::{Handlers, Outcome};
use crate::lease::{Beats, Lease};
use crate::outbox::Outbox;
use crate::settler::Pending;
use crate::{storable, JobError};

/// The lease assumed when neither the host nor the job tells it.
const FALLBACK_LEASE: Duration = Duration::from_secs(30);

/// A running attempt, as shutdown sees it.
pub(crate) struct Running {
    pub lease_token: LeaseToken,
    pub handler: AbortHandle,
}

/// A test's pause between a handler's end and the settlement, to stage a race with
/// shutdown.
#[cfg(test)]
pub(crate) type Hold = Arc<
    dyn Fn(JobId) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
>;

/// What every attempt's task shares.
pub(crate) struct Shared {
    pub host: Arc<dyn JobHost>,
    pub handlers: Handlers,
    pub settle: mpsc::Sender<Pending>,
    /// Settlements that ride on the claim loop's next claim.
    pub outbox: Outbox,
    pub running: Mutex<HashMap<JobId, Running>>,
    pub shutdown: CancellationToken,
    pub lease: Option<Duration>,
    #[cfg(test)]
    pub hold_before_settle: Option<Hold>,
}

impl Shared {
    /// Takes `id`'s entry: the caller now owns the job's end.
    fn take(&self, id: JobId) -> Option<Running> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    /// Takes every entry left: the caller (shutdown) now owns these jobs' ends.
    pub(crate) fn take_all(&self) -> Vec<(JobId, Running)> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect()
    }
}

/// How long `hosted`'s lease lasts from its claim: the host's lease, else what the job
/// says is left of it.
fn lease_length(shared: &Shared, hosted: &HostedJob) -> Duration {
    shared
        .lease
        .or_else(|| {
            let expires = hosted.job.lease_expires_at?;
            let left = expires.duration_since(jiff::Timestamp::now());
            Duration::try_from(left).ok()
        })
        .unwrap_or(FALLBACK_LEASE)
}

/// Starts one attempt: its handler in a task of its own, registered in `running` before
/// this returns, and a task in `tasks` that heartbeats, waits and settles.
pub(crate) fn start(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    hosted: HostedJob,
    permit: OwnedSemaphorePermit,
) {
    let claimed_at = Instant::now();
    let id = hosted.job.id;
    let lease_token = hosted.lease_token;
    let lease = Lease::new(lease_length(shared, &hosted), claimed_at);
    let timeout = hosted.job.timeout_ms.map(Duration::from_millis);
    let job = hosted.job;
    let kind = job.kind.clone();
    let handler = shared.handlers.get(kind.as_str()).cloned();
    let ctx = JobContext::new(
        Claimed {
            id,
            kind: job.kind.as_str().to_string(),
            queue: job.queue.as_str().to_string(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            tags: job.tags.iter().map(|t| t.to_string()).collect(),
            payload: job.payload,
            checkpoint: job.checkpoint,
            lease_token,
        },
        shared.host.clone(),
        lease.clone(),
        shared.shutdown.child_token(),
    );
    // The handler is called inside its own task: a panic there, even in a closure's code
    // before its first `.await`, fails the attempt instead of ending the worker, and
    // shutdown can abort it.
    let run = tokio::spawn(async move {
        let Some(handler) = handler else {
            return Err(JobError::retry(format!(
                "this worker has no handler for kind {kind}"
            )));
        };
        let payload = ctx.payload().clone();
        handler.start(ctx, payload)?.await
    });
    shared
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            id,
            Running {
                lease_token,
                handler: run.abort_handle(),
            },
        );
    let beats = Beats::start(shared.host.clone(), id, lease_token, lease.clone());
    let shared = shared.clone();
    tasks.spawn(async move {
        let attempt = Attempt {
            id,
            lease_token,
            lease,
            beats,
        };
        supervise(&shared, attempt, run, timeout).await;
        drop(permit);
    });
}

/// An attempt's identity and lease, carried to its settlement.
struct Attempt {
    id: JobId,
    lease_token: LeaseToken,
    lease: Arc<Lease>,
    beats: Beats,
}

/// Waits for the handler (within the job's timeout), then settles its outcome if this
/// attempt still owns the job.
async fn supervise(
    shared: &Shared,
    attempt: Attempt,
    mut run: JoinHandle<Outcome>,
    timeout: Option<Duration>,
) {
    let out = match timeout {
        None => Some((&mut run).await),
        Some(limit) => match tokio::time::timeout(limit, &mut run).await {
            Ok(out) => Some(out),
            Err(_) => {
                run.abort();
                None
            }
        },
    };
    #[cfg(test)]
    if let Some(hold) = &shared.hold_before_settle {
        hold(attempt.id).await;
    }
    if shared.take(attempt.id).is_none() {
        // Shutdown took the job to give it back: its end is not this attempt's to settle.
        return;
    }
    let outcome = match out {
        None => Err(JobError::retry(format!(
            "timed out after {:?} (the job's timeout)",
            timeout.unwrap_or_default()
        ))),
        Some(Ok(outcome)) => outcome,
        Some(Err(e)) if e.is_panic() => Err(JobError::retry(format!(
            "the handler panicked: {}",
            errand_core::panic_message(e.into_panic().as_ref())
        ))),
        Some(Err(_)) => Err(JobError::retry("the handler was stopped")),
    };
    hand_off(shared, attempt, outcome).await;
}

/// Hands an attempt's outcome to the settler, unless its lease is lost. Its heartbeats go
/// with it and stop when the settler is done with it.
async fn hand_off(shared: &Shared, attempt: Attempt, outcome: Outcome) {
    let id = attempt.id;
    if attempt.lease.lost().is_cancelled() {
        tracing::info!(job = %id, "lease lost: the attempt's outcome is not settled");
        return;
    }
    let verdict = match outcome {
        Ok(result) => RunVerdict::Complete {
            result: Some(storable::json(result)),
        },
        Err(e) => RunVerdict::Fail {
            error: storable::text(e.message().to_string()),
            retry_in: match e.failure() {
                Failure::Retry(delay) => delay.map(storable::retry_in),
                Failure::Dead => None,
            },
            dead: e.failure() == Failure::Dead,
        },
    };
    let pending = Pending {
        settlement: RunSettlement {
            id,
            lease_token: attempt.lease_token,
            verdict,
            report: None,
        },
        lease: attempt.lease,
        beats: attempt.beats,
    };
    // Offered before the slot frees: the claim loop, waiting for this slot, takes it along.
    if let Some(pending) = shared.outbox.offer(pending) {
        shared.to_settler(pending).await;
    }
}

impl Shared {
    /// Hands `p` to the settler, which sends it on its own.
    pub(crate) async fn to_settler(&self, p: Pending) {
        let id = p.settlement.id;
        if self.settle.send(p).await.is_err() {
            tracing::warn!(job = %id, "not settled: the settler has stopped; the job runs again when its lease lapses");
        }
    }
}
