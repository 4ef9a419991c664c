//! Deletes finished jobs past their retention so tables stay bounded.

use std::sync::Arc;

use errand_core::JobState;
use errand_store::{JobPruneParams, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// Jobs deleted per statement: small enough that each delete holds its locks briefly,
/// large enough that a backlog of a million clears within minutes.
const PRUNE_BATCH: u32 = 1000;

/// One pass: deletes in batches until a batch comes back short; returns how many.
///
/// # Errors
/// The store's error.
pub async fn prune_once(engine: &Engine) -> Result<usize, StoreError> {
    let config = engine.config();
    let rules = [
        (
            vec![JobState::Succeeded, JobState::Cancelled],
            config.retention,
        ),
        (vec![JobState::Dead], config.dead_retention),
    ];
    let mut total = 0;
    for (states, older_than) in rules {
        loop {
            let n = engine
                .store()
                .job_prune(JobPruneParams {
                    states: states.clone(),
                    older_than,
                    limit: PRUNE_BATCH,
                })
                .await?;
            total += n as usize;
            if n < u64::from(PRUNE_BATCH) {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    if total > 0 {
        engine.counts_changed();
    }
    Ok(total)
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().prune_interval;
    super::every("job_cleaner", every, token, || prune_once(&engine)).await;
}
