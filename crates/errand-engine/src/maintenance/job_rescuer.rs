//! Returns jobs whose worker vanished (lease expired) or overran (timeout) to the queue.

use std::sync::Arc;

use errand_store::{JobRescueParams, StoreError};
use tokio_util::sync::CancellationToken;

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

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().rescue_interval;
    super::every("job_rescuer", every, token, || rescue_once(&engine)).await;
}
