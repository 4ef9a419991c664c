//! Workers seen and why a job waits: the bookkeeping `GET /v1/workers` and
//! `GET /v1/jobs/{id}/explain` read.

use std::time::Duration;

use errand_core::worker::WorkerSeen;
use errand_core::{JobId, NodeId};

use super::support::*;
use super::Ctx;
use crate::{SharedStore, StoreError};

fn seen(name: &str, node: NodeId, q: &str, at: errand_core::Millis) -> WorkerSeen {
    WorkerSeen {
        name: name.into(),
        node,
        queues: vec![q.into()],
        kinds: vec![],
        last_claim_at: at,
    }
}

async fn now(store: &SharedStore) -> errand_core::Millis {
    store.clock_now().await.expect("clock")
}

/// Workers are upserted by name (a later claim wins, an older report does not move it
/// back), listed latest first with the jobs they hold, and pruned when silent.
pub(crate) async fn workers_are_seen_listed_and_pruned(Ctx { store, clock }: Ctx) {
    let node = NodeId::new();
    let t = now(&store).await;
    store
        .worker_seen_many(vec![seen("w1", node, "q", t), seen("w2", node, "q", t + 5)])
        .await
        .expect("seen");
    insert(&store, vec![new_job("q", "k"), new_job("q", "k")]).await;
    claim(&store, "q", 2).await; // as "w1"
    let list = store.worker_list().await.expect("list");
    let names: Vec<(&str, u64)> = list
        .iter()
        .map(|w| (w.name.as_str(), w.jobs_in_flight))
        .collect();
    assert_eq!(names, vec![("w2", 0), ("w1", 2)], "latest first");
    assert_eq!(list[1].queues, vec!["q".to_string()]);
    let other = NodeId::new();
    let mut later = seen("w1", other, "q2", t + 10);
    later.kinds = vec!["k".into()];
    store
        .worker_seen_many(vec![later, seen("w2", node, "q", t - 1000)])
        .await
        .expect("seen");
    let list = store.worker_list().await.expect("list");
    assert_eq!(list[0].name, "w1");
    assert_eq!(list[0].node, other);
    assert_eq!(list[0].queues, vec!["q2".to_string()]);
    assert_eq!(list[0].kinds, vec!["k".to_string()]);
    assert_eq!(
        list[1].last_claim_at.as_millisecond(),
        t + 5,
        "an older report does not move a worker back"
    );
    clock.advance(Duration::from_secs(7200)).await;
    let fresh = now(&store).await;
    store
        .worker_seen_many(vec![seen("w3", node, "q", fresh)])
        .await
        .expect("seen");
    let pruned = store
        .worker_prune(Duration::from_secs(3600))
        .await
        .expect("prune");
    assert_eq!(pruned, 2);
    let names: Vec<String> = store
        .worker_list()
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, vec!["w3"]);
}

/// The facts behind "why is it waiting" for a job behind a held lock: the gate, its
/// holder, the queue's running jobs and the workers asking for the queue.
pub(crate) async fn explain_facts_name_the_lock_holder(Ctx { store, .. }: Ctx) {
    assert!(matches!(
        store.job_explain_facts(JobId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
    let t = now(&store).await;
    store
        .worker_seen_many(vec![
            seen("w1", NodeId::new(), "q", t),
            seen("elsewhere", NodeId::new(), "other", t),
        ])
        .await
        .expect("seen");
    let a1 = locked("q", "a");
    let a2 = locked("q", "a");
    insert(&store, vec![a1.clone(), a2.clone()]).await;
    claim(&store, "q", 10).await;
    let facts = store.job_explain_facts(a2.id).await.expect("facts");
    assert_eq!(facts.job.id, a2.id);
    assert!(facts.job.parked);
    assert!(!facts.queue_paused);
    assert_eq!(facts.queue_running.count, 1);
    assert_eq!(facts.queue_running.sample, vec![a1.id]);
    let gate = facts.gate.expect("a gate");
    assert_eq!(gate.name, "lock:a");
    assert_eq!(gate.capacity, 1);
    assert_eq!(gate.holders.count, 1);
    assert_eq!(gate.holders.sample, vec![a1.id]);
    assert!(gate.session.is_none());
    let workers: Vec<&str> = facts.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(workers, vec!["w1"], "only workers asking for its queue");
    let plain = new_job("q", "k");
    insert(&store, vec![plain.clone()]).await;
    let facts = store.job_explain_facts(plain.id).await.expect("facts");
    assert!(facts.gate.is_none());
    assert!(facts.kind_limit.is_none());
}

/// The facts for a job waiting in a session: the session, its head and the holder.
pub(crate) async fn explain_facts_show_the_session(Ctx { store, .. }: Ctx) {
    let s1 = in_session("q", "s");
    let s2 = in_session("q", "s");
    insert(&store, vec![s1.clone(), s2.clone()]).await;
    let c = claim(&store, "q", 10).await.remove(0);
    settled(&store, fail(&c, None, true)).await;
    let facts = store.job_explain_facts(s2.id).await.expect("facts");
    let gate = facts.gate.expect("a gate");
    assert_eq!(gate.name, "session:s");
    let session = gate.session.expect("the session");
    assert_eq!(session.key, "s");
    assert_eq!(session.blocked_by, Some(s1.id));
    assert_eq!(session.head, Some(s1.id));
    assert_eq!(session.length, 1);
}
