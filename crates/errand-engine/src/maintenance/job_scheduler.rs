//! Makes delayed jobs and backed-off retries available when their time comes.

use std::sync::Arc;

use errand_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// Jobs promoted per store call.
const SCHEDULE_BATCH: u32 = 5000;

/// One pass; returns how many queues gained jobs.
///
/// # Errors
/// The store's error.
pub async fn schedule_once(engine: &Engine) -> Result<usize, StoreError> {
    let queues = engine.store().job_schedule_due(SCHEDULE_BATCH).await?;
    for q in &queues {
        engine.wake(q);
    }
    Ok(queues.len())
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().schedule_interval;
    super::every("job_scheduler", every, token, || schedule_once(&engine)).await;
}
