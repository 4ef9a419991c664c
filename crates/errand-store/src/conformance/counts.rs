//! Queue counts stay exact through every kind of change to a job: a store may keep them
//! apart from the jobs (counters, delta rows), so each step compares them with the jobs
//! themselves, before and after the store folds its bookkeeping.

use std::collections::BTreeMap;
use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::{AttemptOutcome, JobState, StateCounts};

use super::restore::exported;
use super::support::*;
use super::Ctx;
use crate::{
    DeadSelection, JobHeartbeatParams, JobListParams, JobPruneParams, JobReleaseManyParams,
    SharedStore,
};

/// Counts per queue by reading every job.
async fn counted_from_jobs(store: &SharedStore) -> BTreeMap<String, StateCounts> {
    let mut out: BTreeMap<String, StateCounts> = BTreeMap::new();
    for q in store.queue_list().await.expect("queues") {
        out.insert(q.name.as_str().to_string(), StateCounts::default());
    }
    let jobs = store
        .job_list(JobListParams {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("list");
    for j in jobs {
        out.entry(j.queue.as_str().to_string())
            .or_default()
            .add(j.state, 1);
    }
    out
}

/// The store's counts for every queue, and for each queue alone, match its jobs, before
/// and after a fold.
pub(super) async fn assert_exact(store: &SharedStore, step: &str) {
    let truth = counted_from_jobs(store).await;
    for folded in [false, true] {
        if folded {
            store.queue_counts_fold().await.expect("fold");
        }
        let listed: BTreeMap<String, StateCounts> = store
            .queue_list()
            .await
            .expect("queues")
            .into_iter()
            .map(|q| (q.name.as_str().to_string(), q.counts))
            .collect();
        assert_eq!(
            listed, truth,
            "GET /v1/queues after {step} (folded: {folded})"
        );
        for (name, counts) in &truth {
            let one = store.queue_get(&queue(name)).await.expect("queue");
            assert_eq!(&one.counts, counts, "queue {name} after {step}");
        }
    }
}

/// Queue counts follow inserts, claims, settles, cancels, retries, heartbeats, promotion,
/// rescue, release, dead requeue and purge, retention and restore.
pub(crate) async fn queue_counts_follow_every_state_change(Ctx { store, clock }: Ctx) {
    let mut later = new_job("a", "k");
    later.run_at = RunAt::After(Duration::from_secs(3600));
    let batch = vec![
        new_job("a", "k"),
        new_job("a", "k"),
        new_job("a", "k"),
        new_job("a", "k"),
        new_job("b", "k"),
        later,
    ];
    let b_job = batch[4].id;
    insert(&store, batch).await;
    insert(&store, vec![new_job("a", "k")]).await;
    assert_exact(&store, "insert").await;

    let cs = claim(&store, "a", 4).await;
    assert_exact(&store, "claim").await;
    settle(&store, complete(&cs[0])).await.expect("complete");
    settle(&store, fail(&cs[1], Some(Duration::from_secs(60)), false))
        .await
        .expect("fail");
    let dead = settle(&store, fail(&cs[2], None, true))
        .await
        .expect("dead");
    assert_exact(&store, "complete, retry later and dead").await;

    store.job_cancel(b_job).await.expect("cancel ready");
    store
        .job_cancel(cs[3].job.id)
        .await
        .expect("cancel running");
    assert_exact(&store, "cancel").await;
    store.job_retry(dead.id).await.expect("retry dead");
    assert_exact(&store, "retry").await;

    let c = claim(&store, "a", 1).await.remove(0);
    store
        .job_heartbeat(JobHeartbeatParams {
            id: c.job.id,
            lease_token: c.lease_token,
            lease: None,
            progress: None,
            checkpoint: None,
        })
        .await
        .expect("heartbeat");
    assert_exact(&store, "heartbeat").await;
    store
        .job_release_many(JobReleaseManyParams {
            leases: vec![(c.job.id, c.lease_token)],
        })
        .await
        .expect("release");
    assert_exact(&store, "release").await;

    clock.advance(Duration::from_secs(3601)).await;
    store.job_promote_due(100).await.expect("promote");
    assert_exact(&store, "promote").await;

    let mut last_try = new_job("a", "k");
    last_try.max_attempts = 1;
    insert(&store, vec![last_try]).await;
    claim(&store, "a", 100).await;
    clock.advance(LEASE + PAST).await;
    rescue(&store).await;
    assert_exact(&store, "rescue (to available and to dead)").await;

    store
        .dead_requeue_many(DeadSelection::Queue(queue("a")))
        .await
        .expect("requeue");
    assert_exact(&store, "dead requeue").await;
    let c = claim(&store, "a", 1).await.remove(0);
    settle(&store, fail(&c, None, true)).await.expect("dead");
    store
        .dead_purge_many(DeadSelection::All)
        .await
        .expect("purge");
    assert_exact(&store, "dead purge").await;

    clock.advance(Duration::from_secs(7200)).await;
    store
        .job_prune(JobPruneParams {
            states: vec![JobState::Succeeded, JobState::Cancelled],
            older_than: Duration::from_secs(3600),
            limit: 100,
        })
        .await
        .expect("prune");
    assert_exact(&store, "retention").await;

    store
        .job_restore_many(vec![
            exported(JobState::Succeeded, &[AttemptOutcome::Succeeded]),
            exported(JobState::Running, &[AttemptOutcome::Running]),
            exported(JobState::Dead, &[AttemptOutcome::Failed]),
            exported(JobState::Available, &[]),
        ])
        .await
        .expect("restore");
    assert_exact(&store, "restore").await;
}
