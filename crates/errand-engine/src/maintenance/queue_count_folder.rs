//! Keeps reading queue counts cheap: a store that records count changes as they happen
//! (PostgreSQL appends one signed row per statement, so concurrent writers never wait on a
//! shared counter) has those rows folded here, so `GET /v1/queues` sums a few rows.

use std::sync::Arc;
use std::time::Duration;

use errand_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::due_clock::{run_when_due, Cadence, Pass};
use crate::Engine;

/// How long after this node's first write since the last fold it folds. Between folds each
/// write statement adds at most a row per queue and state it touched; at ten thousand
/// statements a second a read then sums some ten thousand small rows (a few milliseconds),
/// and folding more often buys little.
pub(crate) const FOLD_DELAY: Duration = Duration::from_secs(1);

/// How often a node that wrote nothing folds anyway: rows another node left when it died
/// are folded by the others this late (a live node folds its own). Reads are exact either
/// way; only their cost waits for the fold.
const FOLD_CAP: Duration = Duration::from_secs(30);

/// One pass; returns how many rows were folded.
///
/// # Errors
/// The store's error.
pub async fn fold_counts_once(engine: &Engine) -> Result<usize, StoreError> {
    Ok(engine.store().queue_counts_fold().await? as usize)
}

/// Folds `FOLD_DELAY` after this node's writes (an idle node asks the store nothing but
/// once per `FOLD_CAP`).
pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let cadence = Cadence {
        cap: FOLD_CAP,
        floor: FOLD_DELAY,
    };
    run_when_due(
        "queue_count_folder",
        &engine.fold_due,
        cadence,
        token,
        || async {
            fold_counts_once(&engine).await.map(|changed| Pass {
                changed,
                more: false,
            })
        },
        // Nothing to ask: only this node's writes, or the cap, bring a fold.
        || async { Ok(None) },
    )
    .await;
}
