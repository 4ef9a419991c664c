//! Queues, dead jobs and promotion of delayed jobs.

use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::JobState;

use super::support::*;
use super::Ctx;
use crate::{DeadSelection, StoreError};

/// Queue listings count jobs per state.
pub(crate) async fn queue_list_counts_states(Ctx { store, .. }: Ctx) {
    insert(
        &store,
        vec![new_job("a", "k"), new_job("a", "k"), new_job("b", "k")],
    )
    .await;
    let mut later = new_job("a", "k");
    later.run_at = RunAt::After(Duration::from_secs(3600));
    insert(&store, vec![later]).await;
    claim(&store, "a", 1).await;
    let queues = store.queue_list().await.expect("queues");
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b"]);
    let a = &queues[0];
    assert_eq!(
        (a.counts.available, a.counts.running, a.counts.scheduled),
        (1, 1, 1)
    );
    assert!(a.oldest_available_age_ms.is_some());
    assert!(!a.paused);
    let b = store.queue_get(&queue("b")).await.expect("queue");
    assert_eq!(b.counts.available, 1);
    assert!(matches!(
        store.queue_get(&queue("zzz")).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Pausing a queue nobody used is `NotFound`.
pub(crate) async fn pause_unknown_queue_is_not_found(Ctx { store, .. }: Ctx) {
    let r = store.queue_pause(&queue("ghost")).await;
    assert!(matches!(r, Err(StoreError::NotFound { .. })));
}

/// Dead jobs are requeued and purged by queue or by id.
pub(crate) async fn dead_requeue_and_purge_by_selection(Ctx { store, .. }: Ctx) {
    let mut ids = Vec::new();
    for q in ["a", "a", "b"] {
        let j = new_job(q, "k");
        ids.push(j.id);
        insert(&store, vec![j]).await;
        let c = claim(&store, q, 1).await.remove(0);
        settle(&store, fail(&c, None, true)).await.expect("fail");
    }
    let n = store
        .dead_requeue_many(DeadSelection::Ids {
            ids: vec![ids[0]],
            queue: None,
        })
        .await
        .expect("requeue");
    assert_eq!(n, 1);
    assert_eq!(
        store.job_get(ids[0]).await.expect("get").state,
        JobState::Available
    );
    let n = store
        .dead_purge_many(DeadSelection::Queue(queue("a")))
        .await
        .expect("purge");
    assert_eq!(n, 1);
    assert!(matches!(
        store.job_get(ids[1]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.job_get(ids[2]).await.expect("get").state,
        JobState::Dead
    );
    let nothing = DeadSelection::Ids {
        ids: vec![],
        queue: None,
    };
    assert_eq!(
        store.dead_purge_many(nothing).await.expect("purge"),
        0,
        "an empty list of ids selects nothing"
    );
    let n = store
        .dead_requeue_many(DeadSelection::All)
        .await
        .expect("requeue");
    assert_eq!(n, 1);
    assert_eq!(
        store.job_get(ids[2]).await.expect("get").state,
        JobState::Available
    );
}

/// Due scheduled jobs become available and name their queue; jobs not yet due stay.
pub(crate) async fn promote_due_makes_jobs_available(Ctx { store, clock }: Ctx) {
    let retry_in = Duration::from_secs(60);
    insert(&store, vec![new_job("x", "k")]).await;
    let c = claim(&store, "x", 1).await.remove(0);
    settle(&store, fail(&c, Some(retry_in), false))
        .await
        .expect("fail");
    clock.advance(retry_in - EARLY).await;
    assert!(
        store.job_promote_due(100).await.expect("due").is_empty(),
        "before its time"
    );
    assert_eq!(
        store.job_get(c.job.id).await.expect("get").state,
        JobState::Scheduled
    );
    clock.advance(PAST).await;
    assert_eq!(
        store.job_promote_due(100).await.expect("due"),
        vec![queue("x")]
    );
    assert_eq!(
        store.job_get(c.job.id).await.expect("get").state,
        JobState::Available
    );
    assert!(store.job_promote_due(100).await.expect("due").is_empty());
}
