//! Keeps this node registered in the store, so `GET /v1/nodes` shows which nodes run and
//! which stopped heartbeating.

use std::sync::Arc;
use std::time::Duration;

use errand_store::NodeHeartbeatParams;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How often a node says it is alive.
pub const NODE_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// A node silent this long is listed as dead: five missed heartbeats, so one slow store
/// round trip does not make a node look dead.
pub const NODE_DEAD_AFTER: Duration = Duration::from_secs(10);
/// Nodes gone longer than this drop out of the list.
pub const NODE_FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let params = NodeHeartbeatParams {
        id: engine.node_id(),
        host: host_name(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    super::every("node_heartbeat", NODE_HEARTBEAT_INTERVAL, token, || {
        let params = params.clone();
        let engine = engine.clone();
        async move { engine.store().node_heartbeat(params).await.map(|_| 0) }
    })
    .await;
    if let Err(e) = engine.store().node_stop(engine.node_id()).await {
        tracing::warn!(error = %e, "could not mark this node stopped");
    }
}
