//! Prunes the event log by age (`event_retention`) and size (`event_retention_max`), but
//! never an event the subscription fan-out has not read yet: subscriptions lose nothing.

use std::sync::Arc;

use errand_core::EventId;
use errand_store::{EventPruneParams, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// Events deleted per statement: short transactions, a backlog cleared within a minute.
const PRUNE_BATCH: u32 = 5000;

/// Events after this id must stay: the fan-out cursor when any subscription exists (the
/// very start of the log when it never ran), `None` when nothing reads the log later.
async fn keep_after(engine: &Engine) -> Result<Option<EventId>, StoreError> {
    if engine.store().subscription_list().await?.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        engine.store().delivery_cursor().await?.unwrap_or_default(),
    ))
}

/// One pass: prunes in batches until a batch comes back short; returns how many went.
///
/// # Errors
/// The store's error.
pub async fn prune_events_once(engine: &Engine) -> Result<usize, StoreError> {
    let keep_after = keep_after(engine).await?;
    let config = engine.config();
    let mut total = 0;
    loop {
        let n = engine
            .store()
            .event_prune(EventPruneParams {
                older_than: config.event_retention,
                keep_at_most: config.event_retention_max,
                keep_after,
                limit: PRUNE_BATCH,
            })
            .await?;
        total += n as usize;
        if n < u64::from(PRUNE_BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(total)
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().event_prune_interval;
    super::every("event_pruner", every, token, || prune_events_once(&engine)).await;
}
