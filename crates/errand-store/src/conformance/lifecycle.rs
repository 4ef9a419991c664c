//! Gates across a job's whole life: manual retries, bulk requeues, purges, prunes,
//! restores and rescues keep every gate's places and line true.

use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::ordering::SessionOnDead;
use errand_core::queue::{Backoff, QueueSettingsPatch};
use errand_core::time::{to_millis, to_timestamp};
use errand_core::{JobId, JobState};

use super::support::*;
use super::Ctx;
use crate::{DeadSelection, JobPruneParams, RestoredJob};

/// A lease that outlasts the hours these cases move the clock by while a job runs.
const LONG_LEASE: Duration = Duration::from_secs(3 * 3600);

/// A key job waiting for its retry, retried by hand while its key is full, counts once:
/// it stays parked until the holder finishes, then runs. Its own (older, higher) limit
/// does not raise the key's limit: only a new enqueue sets it.
pub(crate) async fn a_manual_retry_of_a_waiting_key_job_keeps_the_count(Ctx { store, .. }: Ctx) {
    let j1 = keyed("q", "k", 2);
    insert(&store, vec![j1.clone()]).await;
    let c1 = claim(&store, "q", 10).await.remove(0);
    settled(&store, fail(&c1, Some(Duration::from_secs(3600)), false)).await;
    let j2 = keyed("q", "k", 1);
    insert(&store, vec![j2.clone()]).await;
    let c2 = claim_with(&store, "q", 10, LONG_LEASE).await;
    assert_eq!(ids(&c2), vec![j2.id]);
    let retried = store.job_retry(j1.id).await.expect("retry");
    assert!(retried.parked, "the key's one place is taken by j2");
    assert!(claim(&store, "q", 10).await.is_empty(), "the limit is 1");
    settled(&store, complete(&c2[0])).await;
    assert_eq!(
        ids(&claim(&store, "q", 10).await),
        vec![j1.id],
        "the retried job takes the freed place"
    );
}

/// A dead key job run again (retry or bulk requeue) keeps the key's limit, which the
/// latest enqueue set.
pub(crate) async fn a_revived_job_keeps_the_key_limit(Ctx { store, .. }: Ctx) {
    let j1 = keyed("q", "k", 3);
    insert(&store, vec![j1.clone()]).await;
    let c1 = claim(&store, "q", 10).await.remove(0);
    settled(&store, fail(&c1, None, true)).await;
    let j2 = keyed("q", "k", 1);
    let j3 = keyed("q", "k", 1);
    insert(&store, vec![j2.clone(), j3.clone()]).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![j2.id]);
    store.job_retry(j1.id).await.expect("retry");
    assert!(
        claim(&store, "q", 10).await.is_empty(),
        "the key's limit stays 1"
    );
}

/// Deleting the dead job a session is blocked on (purge, prune) moves the session on.
pub(crate) async fn deleting_a_blocking_head_moves_the_session_on(Ctx { store, clock }: Ctx) {
    let s: Vec<_> = (0..3).map(|_| in_session("q", "s")).collect();
    insert(&store, s.clone()).await;
    let c1 = claim(&store, "q", 10).await.remove(0);
    settled(&store, fail(&c1, None, true)).await;
    store
        .dead_purge_many(DeadSelection::Ids {
            ids: vec![s[0].id],
            queue: None,
        })
        .await
        .expect("purge");
    let session = store.session_get("s").await.expect("session");
    assert_eq!(session.blocked_by, None, "the purged head blocks nothing");
    let c2 = claim(&store, "q", 10).await;
    assert_eq!(ids(&c2), vec![s[1].id]);
    settled(&store, fail(&c2[0], None, true)).await;
    clock.advance(Duration::from_secs(2)).await;
    store
        .job_prune(JobPruneParams {
            states: vec![JobState::Dead],
            older_than: Duration::from_secs(1),
            limit: 100,
        })
        .await
        .expect("prune");
    assert_eq!(
        store.session_get("s").await.expect("session").blocked_by,
        None
    );
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![s[2].id]);
}

/// A restored ready job of a held lock whose time has not come waits for promotion like
/// a delayed job, and runs once it is due.
pub(crate) async fn a_restored_job_not_due_runs_when_due(Ctx { store, clock }: Ctx) {
    let source = locked("src", "source");
    insert(&store, vec![source.clone()]).await;
    let template = store.job_get(source.id).await.expect("get");
    let now = store.clock_now().await.expect("now");
    let restored = |id: JobId, run_at| {
        let mut job = template.clone();
        job.id = id;
        job.queue = queue("q");
        job.ordering.lock_key = Some("l".into());
        job.state = JobState::Available;
        job.run_at = to_timestamp(run_at);
        RestoredJob {
            secrets: Default::default(),
            job,
            attempts: vec![],
        }
    };
    let (first, later) = (JobId::new(), JobId::new());
    let hour = Duration::from_secs(3600);
    store
        .job_restore_many(vec![restored(first, now), restored(later, now + 3_600_000)])
        .await
        .expect("restore");
    let c = claim(&store, "q", 10).await;
    assert_eq!(ids(&c), vec![first]);
    settled(&store, complete(&c[0])).await;
    clock.advance(hour + Duration::from_secs(1)).await;
    promote(&store).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![later]);
}

/// A bulk requeue revives a session's dead jobs in their line order.
pub(crate) async fn a_bulk_requeue_keeps_line_order(Ctx { store, .. }: Ctx) {
    let mut s1 = in_session("q", "s");
    s1.ordering.session_on_dead = Some(SessionOnDead::Continue);
    let mut s2 = in_session("q", "s");
    s2.ordering.session_on_dead = Some(SessionOnDead::Continue);
    insert(&store, vec![s1.clone(), s2.clone()]).await;
    let c = claim(&store, "q", 10).await.remove(0);
    settled(&store, fail(&c, None, true)).await;
    // s1 comes back behind s2, then both die: the line is s2, s1.
    store.job_retry(s1.id).await.expect("retry");
    for _ in 0..2 {
        let c = claim(&store, "q", 10).await.remove(0);
        settled(&store, fail(&c, None, true)).await;
    }
    let n = store
        .dead_requeue_many(DeadSelection::Queue(queue("q")))
        .await
        .expect("requeue");
    assert_eq!(n, 2);
    let first = claim(&store, "q", 10).await;
    assert_eq!(ids(&first), vec![s2.id], "s2 was ahead in the line");
    settled(&store, complete(&first[0])).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![s1.id]);
}

/// A rescued attempt that overran its timeout backs off by its queue's backoff, as a
/// failure settled without `retry_in` does.
pub(crate) async fn a_rescue_uses_the_queue_backoff(Ctx { store, clock }: Ctx) {
    store
        .queue_update(
            &queue("q"),
            QueueSettingsPatch {
                backoff: Some(Some(Backoff {
                    base_ms: 600_000,
                    max_ms: 3_600_000,
                })),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    let mut job = new_job("q", "k");
    job.timeout = Some(Duration::from_secs(60));
    job.run_at = RunAt::Now;
    insert(&store, vec![job.clone()]).await;
    claim_with(&store, "q", 1, LONG_LEASE).await;
    clock.advance(Duration::from_secs(61)).await;
    let rescued = rescue_one(&store, job.id).await;
    assert_eq!(rescued.state, JobState::Scheduled);
    let now = store.clock_now().await.expect("now");
    assert!(
        to_millis(rescued.run_at) - now >= 590_000,
        "the queue's ten minutes, not the server's default"
    );
}
