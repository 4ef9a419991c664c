//! Continuous instance records, shared by every node.

use std::time::Duration;

use errand_core::{InstanceRecord, InstanceState, NodeId, RunReport};

use super::support::*;
use super::Ctx;

fn record(definition: &str, node: NodeId) -> InstanceRecord {
    let t = |ms: i64| jiff::Timestamp::from_millisecond(1_790_000_000_000 + ms).expect("timestamp");
    InstanceRecord {
        definition: definition.into(),
        node,
        instance: uuid::Uuid::now_v7(),
        pid: Some(4242),
        state: InstanceState::Running,
        since: t(10),
        restarts: 2,
        last_exit: Some(RunReport {
            exit_code: None,
            signal: Some(9),
            duration_ms: 5_000,
            cpu_ms: 40,
            max_rss_bytes: 1 << 20,
        }),
        last_exit_at: Some(t(5)),
        updated_at: t(0),
    }
}

/// Records are replaced by `(node, instance)`, listed per definition (or all) with every
/// field as put and `updated_at` on the store's clock, deleted one by one, and pruned once
/// not renewed for `stale_after`.
pub(crate) async fn instances_are_put_listed_deleted_and_pruned(Ctx { store, clock }: Ctx) {
    let (n1, n2) = (NodeId::new(), NodeId::new());
    let a = record("tail", n1);
    let b = record("tail", n2);
    let other = record("other", n1);
    let before = store.clock_now().await.expect("clock");
    for r in [&a, &b, &other] {
        store.instance_put(r.clone()).await.expect("put");
    }
    let all = store.instance_list(None).await.expect("list");
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].definition, "other");
    let tail = store
        .instance_list(Some("tail".into()))
        .await
        .expect("list");
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort_by_key(|r| (r.node.0, r.instance));
    for (got, want) in tail.iter().zip(&expected) {
        assert!(got.updated_at.as_millisecond() >= before, "store clock");
        let want = InstanceRecord {
            updated_at: got.updated_at,
            ..want.clone()
        };
        assert_eq!(got, &want);
    }
    assert_eq!(tail.len(), 2);

    let restarted = InstanceRecord {
        pid: None,
        state: InstanceState::Backoff,
        restarts: 3,
        ..a.clone()
    };
    store.instance_put(restarted).await.expect("put");
    let tail = store
        .instance_list(Some("tail".into()))
        .await
        .expect("list");
    assert_eq!(tail.len(), 2, "replaced, not added");
    let got = tail
        .iter()
        .find(|r| r.instance == a.instance)
        .expect("a listed");
    assert_eq!(
        (got.pid, got.state, got.restarts),
        (None, InstanceState::Backoff, 3)
    );

    store.instance_delete(n2, b.instance).await.expect("delete");
    let tail = store
        .instance_list(Some("tail".into()))
        .await
        .expect("list");
    assert_eq!(tail.len(), 1);

    let stale = Duration::from_secs(60);
    clock.advance(stale - EARLY).await;
    assert_eq!(store.instance_prune(stale).await.expect("prune"), 0);
    store.instance_put(a.clone()).await.expect("renew");
    clock.advance(PAST).await;
    assert_eq!(
        store.instance_prune(stale).await.expect("prune"),
        1,
        "the record nobody renewed"
    );
    let left = store.instance_list(None).await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].instance, a.instance, "the renewed record stays");
}
