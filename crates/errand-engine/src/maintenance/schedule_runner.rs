//! Fires schedules. Every node runs it; exactly-once per slot comes from the store's
//! unique slot key and the compare-and-set on `next_fire_at`, not from leader election.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::Engine;

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().schedule_pass_interval;
    super::every("schedule_runner", every, token, || engine.schedule_pass()).await;
}
