//! Writes the workers this node saw claiming (see `worker_registry`) every few seconds and
//! once more at shutdown, and forgets workers nobody has seen for a day.

use std::sync::Arc;
use std::time::Duration;

use errand_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How often seen workers are written: `GET /v1/workers` and explain flush this node's
/// own on demand, so this only bounds how stale other nodes' views are; a few seconds is
/// far inside the minute after which a silent worker stops counting.
const FLUSH_EVERY: Duration = Duration::from_secs(3);
/// How often forgotten workers are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// A worker unseen this long is forgotten: a day keeps yesterday's workers listed for
/// whoever asks why nothing runs this morning.
pub const WORKER_FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// One prune pass; returns how many workers were forgotten.
///
/// # Errors
/// The store's error.
pub async fn prune_workers_once(engine: &Engine) -> Result<usize, StoreError> {
    let n = engine.store().worker_prune(WORKER_FORGET_AFTER).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let prune = {
        let engine = engine.clone();
        let token = token.clone();
        async move {
            super::every("worker_pruner", PRUNE_EVERY, token, || {
                prune_workers_once(&engine)
            })
            .await;
        }
    };
    let flush = {
        let engine = engine.clone();
        super::every("worker_flusher", FLUSH_EVERY, token, move || {
            let engine = engine.clone();
            async move { engine.flush_workers().await }
        })
    };
    tokio::join!(prune, flush);
    // Shutting down: what this node saw since the last flush is written once more.
    if let Err(e) = engine.flush_workers().await {
        tracing::warn!(error = %e, "could not record the workers seen before shutdown");
    }
}
