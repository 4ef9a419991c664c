//! Deletes what continuous instances leave behind: log lines past the retention (a job's
//! lines go with the job; an instance's have no job to go with), and the records of
//! instances whose node died without cleaning up.

use std::sync::Arc;

use errand_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// Lines deleted per statement: short locks, and a busy instance's day clears quickly.
const LOG_PRUNE_BATCH: u32 = 5000;

/// One pass: instance log lines older than the retention, in batches until one comes back
/// short, then stale instance records; returns how many rows went.
///
/// # Errors
/// The store's error.
pub async fn prune_instances_once(engine: &Engine) -> Result<usize, StoreError> {
    let config = engine.config();
    let mut total = 0;
    loop {
        let n = engine
            .store()
            .job_log_prune(config.retention, LOG_PRUNE_BATCH)
            .await?;
        total += n as usize;
        if n < u64::from(LOG_PRUNE_BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    let stale = engine
        .store()
        .instance_prune(config.instance_stale_after)
        .await?;
    Ok(total + stale as usize)
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().prune_interval;
    super::every("instance_cleaner", every, token, || {
        prune_instances_once(&engine)
    })
    .await;
}
