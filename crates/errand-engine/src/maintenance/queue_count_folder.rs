//! Keeps reading queue counts cheap: a store that records count changes as they happen
//! (PostgreSQL appends one signed row per statement, so concurrent writers never wait on a
//! shared counter) has those rows folded here, so `GET /v1/queues` sums a few rows.

use std::sync::Arc;
use std::time::Duration;

use errand_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How often to fold. Between folds each write statement adds at most a row per queue and
/// state it touched; at ten thousand statements a second a read then sums some ten
/// thousand small rows (a few milliseconds), and folding more often buys little.
const FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// One pass; returns how many rows were folded.
///
/// # Errors
/// The store's error.
pub async fn fold_counts_once(engine: &Engine) -> Result<usize, StoreError> {
    Ok(engine.store().queue_counts_fold().await? as usize)
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    super::every("queue_count_folder", FOLD_INTERVAL, token, || {
        fold_counts_once(&engine)
    })
    .await;
}
