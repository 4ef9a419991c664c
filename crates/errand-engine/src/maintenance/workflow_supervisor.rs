//! The workflow supervisor: every `supervise_interval`, on every node, acts on steps past
//! their deadline (the store makes sure only one node acts on each, once).

use std::sync::Arc;

use errand_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// Steps acted on per pass; more wait for the next pass.
const SUPERVISE_BATCH: u32 = 500;

/// One pass; returns how many steps were acted on.
///
/// # Errors
/// The store's error.
pub async fn supervise_once(engine: &Engine) -> Result<usize, StoreError> {
    Ok(engine.workflow_supervise(SUPERVISE_BATCH).await?.len())
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().supervise_interval;
    super::every("workflow_supervisor", every, token, || {
        supervise_once(&engine)
    })
    .await;
}
