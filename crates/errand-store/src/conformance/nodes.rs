//! Node registry.

use std::time::Duration;

use crate::{NodeHeartbeatParams, SharedStore};

/// Nodes register with their first heartbeat, list newest first, and show how they ended.
pub(crate) async fn nodes_register_heartbeat_and_stop(store: SharedStore) {
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
    let nodes = store
        .node_list(Duration::from_secs(30), day)
        .await
        .expect("list");
    assert_eq!(nodes.len(), 2);
    let status = |id| nodes.iter().find(|n| n.id == id).map(|n| n.status);
    assert_eq!(status(a), Some(errand_core::NodeStatus::Stopped));
    assert_eq!(status(b), Some(errand_core::NodeStatus::Alive));
    assert_eq!(nodes[0].host, "host-1");
    assert_eq!(nodes[0].pid, 42);
    let judged_dead = store.node_list(Duration::ZERO, day).await.expect("list");
    let b_now = judged_dead.iter().find(|n| n.id == b).expect("b listed");
    assert_eq!(
        b_now.status,
        errand_core::NodeStatus::Dead,
        "no heartbeat within dead_after"
    );
}
