//! Returns jobs whose worker vanished (lease expired) or overran (timeout) to the queue.

use std::sync::Arc;

use errand_store::{DueWork, JobRescueParams, StoreError};
use tokio_util::sync::CancellationToken;

use crate::due_clock::{run_when_due, Cadence, Pass};
use crate::Engine;

/// Jobs rescued per store call; a bounded batch keeps the write transaction short.
const RESCUE_BATCH: u32 = 1000;

/// One rescue pass; returns how many jobs changed.
///
/// # Errors
/// The store's error.
pub async fn rescue_once(engine: &Engine) -> Result<usize, StoreError> {
    let jobs = engine
        .metrics
        .timed(
            "job_rescue_expired",
            engine.store().job_rescue_expired(JobRescueParams {
                limit: RESCUE_BATCH,
                retry_policy: engine.config().retry_policy,
            }),
        )
        .await?;
    for job in &jobs {
        tracing::info!(job = %job.id, queue = %job.queue, state = %job.state, "rescued job");
        engine.metrics.rescued(job);
        engine.publish(job);
    }
    Ok(jobs.len())
}

/// Sleeps until the soonest lease or timeout ends (this node's claims are noted as they
/// are made; other nodes' leases are found at least every `rescue_interval` twice over),
/// then rescues what ended.
pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().rescue_interval;
    let cadence = Cadence {
        cap: every * 2,
        floor: every,
    };
    run_when_due(
        "job_rescuer",
        &engine.rescue_due,
        cadence,
        token,
        || async {
            rescue_once(&engine).await.map(|changed| Pass {
                changed,
                more: changed >= RESCUE_BATCH as usize,
            })
        },
        || engine.store().due_in(DueWork::Rescue),
    )
    .await;
}
