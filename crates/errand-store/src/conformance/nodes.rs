//! Node registry.

use std::time::Duration;

use super::Ctx;
use crate::NodeHeartbeatParams;

/// Nodes register with their first heartbeat, list newest first, and show how they ended;
/// on the store's clock, a node silent past `dead_after` is dead, past `forget_after` gone.
pub(crate) async fn nodes_register_heartbeat_and_stop(Ctx { store, clock }: Ctx) {
    let a = errand_core::NodeId::new();
    let b = errand_core::NodeId::new();
    for id in [a, b] {
        store
            .node_heartbeat(NodeHeartbeatParams {
                id,
                host: "host-1".into(),
                pid: 42,
                version: "0.1.0".into(),
            })
            .await
            .expect("heartbeat");
    }
    store.node_stop(a).await.expect("stop");
    let day = Duration::from_secs(86_400);
    let dead_after = Duration::from_secs(30);
    let nodes = store.node_list(dead_after, day).await.expect("list");
    assert_eq!(nodes.len(), 2);
    let status = |id| nodes.iter().find(|n| n.id == id).map(|n| n.status);
    assert_eq!(status(a), Some(errand_core::NodeStatus::Stopped));
    assert_eq!(status(b), Some(errand_core::NodeStatus::Alive));
    assert_eq!(nodes[0].host, "host-1");
    assert_eq!(nodes[0].pid, 42);
    clock.advance(dead_after + Duration::from_secs(1)).await;
    let silent = store.node_list(dead_after, day).await.expect("list");
    let b_now = silent.iter().find(|n| n.id == b).expect("b listed");
    assert_eq!(
        b_now.status,
        errand_core::NodeStatus::Dead,
        "no heartbeat within dead_after"
    );
    let forgotten = store.node_list(dead_after, dead_after).await.expect("list");
    assert!(forgotten.is_empty(), "silent for longer than forget_after");
}
