//! The workflow supervisor: on every node, acts on steps past their deadline (the store
//! makes sure only one node acts on each, once).

use std::sync::Arc;
use std::time::Duration;

use errand_store::{DueWork, StoreError};
use tokio_util::sync::CancellationToken;

use crate::due_clock::{run_when_due, Cadence, Pass};
use crate::Engine;

/// Steps acted on per pass; a full pass runs another at once.
const SUPERVISE_BATCH: u32 = 500;

/// Passes run at least this far apart (or `supervise_interval` apart when that is shorter),
/// so steps whose deadlines come one after another share passes, and a deadline the store
/// keeps calling due (its row locked by another node's pass) is looked at ten times a
/// second, not in a busy loop.
const FLOOR: Duration = Duration::from_millis(100);

/// One pass; returns how many steps were acted on.
///
/// # Errors
/// The store's error.
pub async fn supervise_once(engine: &Engine) -> Result<usize, StoreError> {
    Ok(engine.workflow_supervise(SUPERVISE_BATCH).await?.len())
}

/// Sleeps until the soonest step deadline (this node's steps are noted as they start or
/// end; other nodes' are found at least every `supervise_interval`), then acts on what
/// passed its deadline.
pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().supervise_interval;
    let cadence = Cadence {
        cap: every,
        floor: every.min(FLOOR),
    };
    run_when_due(
        "workflow_supervisor",
        &engine.deadline_due,
        cadence,
        token,
        || async {
            supervise_once(&engine).await.map(|changed| Pass {
                changed,
                more: changed >= SUPERVISE_BATCH as usize,
            })
        },
        || engine.store().due_in(DueWork::Deadline),
    )
    .await;
}
