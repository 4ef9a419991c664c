//! Gate paths of the PostgreSQL store that the shared suite does not walk: bulk requeue of
//! dead lock and session jobs, restore of gated jobs, manual retry of a parked job waiting
//! for its retry, the oldest-ready age of a queue whose waiting jobs are parked, and fair
//! ranks drawn for a whole insert batch.

mod common;

use std::time::Duration;

use errand_core::ordering::JobOrdering;
use errand_core::{Job, JobId, JobState, NewJob, QueueName, RetryPolicy};
use errand_store::conformance::{complete, new_job};
use errand_store::{
    ClaimedJob, DeadSelection, JobClaimParams, JobInsertManyParams, JobSettleManyParams,
    RestoredJob, Settlement, Store,
};
use errand_store_postgres::PgStore;
use errand_testkit::PgSchema;

/// A store on a fresh schema (`None` when no PostgreSQL is configured and not required).
async fn store(test: &str) -> Option<(PgSchema, PgStore)> {
    let (schema, store, _raw) = common::open(test).await?;
    Some((schema, store))
}

fn ordered(ordering: JobOrdering) -> NewJob {
    NewJob {
        ordering,
        ..new_job("q", "k")
    }
}

fn lock(key: &str) -> NewJob {
    ordered(JobOrdering {
        lock_key: Some(key.into()),
        ..JobOrdering::default()
    })
}

fn session(key: &str) -> NewJob {
    ordered(JobOrdering {
        session_key: Some(key.into()),
        ..JobOrdering::default()
    })
}

async fn add(store: &PgStore, jobs: Vec<NewJob>) {
    store
        .job_insert_many(JobInsertManyParams {
            jobs,
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
}

async fn take(store: &PgStore) -> Vec<ClaimedJob> {
    store
        .job_claim(JobClaimParams {
            queue: QueueName::parse("q").expect("queue"),
            worker: "w".into(),
            max: 10,
            lease: Duration::from_secs(300),
            kinds: vec![],
        })
        .await
        .expect("claim")
}

fn ids(c: &[ClaimedJob]) -> Vec<JobId> {
    c.iter().map(|c| c.job.id).collect()
}

async fn settle(store: &PgStore, s: Settlement) -> Job {
    store
        .job_settle_many(JobSettleManyParams {
            settlements: vec![s],
            retry_policy: RetryPolicy::default(),
        })
        .await
        .expect("settle")
        .pop()
        .expect("one answer")
        .expect("settled")
        .job
}

fn fail(c: &ClaimedJob, retry_in: Option<Duration>, dead: bool) -> Settlement {
    Settlement::Fail {
        id: c.job.id,
        lease_token: c.lease_token,
        error: "boom".into(),
        retry_in,
        dead,
        report: None,
    }
}

#[tokio::test]
async fn a_requeued_dead_lock_job_queues_behind_the_holder() {
    let Some((_schema, store)) = store("requeued dead lock job").await else {
        return;
    };
    let (first, second) = (lock("a"), lock("a"));
    add(&store, vec![first.clone(), second.clone()]).await;
    let c = take(&store).await;
    assert_eq!(ids(&c), vec![first.id]);
    assert_eq!(
        settle(&store, fail(&c[0], None, true)).await.state,
        JobState::Dead
    );
    let holder = take(&store).await;
    assert_eq!(ids(&holder), vec![second.id], "death freed the lock");
    assert_eq!(
        store
            .dead_requeue_many(DeadSelection::All)
            .await
            .expect("requeue"),
        1
    );
    let back = store.job_get(first.id).await.expect("get");
    assert_eq!(back.state, JobState::Available);
    assert!(
        back.parked,
        "the lock is held: the requeued job waits in line"
    );
    assert!(take(&store).await.is_empty());
    settle(&store, complete(&holder[0])).await;
    assert_eq!(ids(&take(&store).await), vec![first.id]);
}

#[tokio::test]
async fn a_requeued_dead_session_head_runs_before_the_rest() {
    let Some((_schema, store)) = store("requeued dead session head").await else {
        return;
    };
    let (head, next) = (session("s"), session("s"));
    add(&store, vec![head.clone(), next.clone()]).await;
    let c = take(&store).await;
    assert_eq!(ids(&c), vec![head.id]);
    settle(&store, fail(&c[0], None, true)).await;
    assert!(
        take(&store).await.is_empty(),
        "a dead head blocks its session"
    );
    assert_eq!(
        store.session_get("s").await.expect("session").blocked_by,
        Some(head.id)
    );
    store
        .dead_requeue_many(DeadSelection::All)
        .await
        .expect("requeue");
    let s = store.session_get("s").await.expect("session");
    assert_eq!((s.blocked_by, s.head, s.length), (None, Some(head.id), 2));
    let again = take(&store).await;
    assert_eq!(ids(&again), vec![head.id], "the head goes first again");
    settle(&store, complete(&again[0])).await;
    assert_eq!(ids(&take(&store).await), vec![next.id]);
}

#[tokio::test]
async fn restored_gated_jobs_take_their_gates_in_export_order() {
    let Some((_s1, source)) = store("restore source").await else {
        return;
    };
    let Some((_s2, target)) = store("restore target").await else {
        return;
    };
    let jobs = vec![lock("a"), lock("a"), session("s"), session("s")];
    add(&source, jobs.clone()).await;
    let mut restored = Vec::new();
    for j in &jobs {
        restored.push(RestoredJob {
            secrets: Default::default(),
            job: source.job_get(j.id).await.expect("get"),
            attempts: vec![],
        });
    }
    assert_eq!(target.job_restore_many(restored).await.expect("restore"), 4);
    let first = take(&target).await;
    assert_eq!(ids(&first), vec![jobs[0].id, jobs[2].id], "one per gate");
    assert!(target.job_get(jobs[1].id).await.expect("get").parked);
    for c in &first {
        settle(&target, complete(c)).await;
    }
    assert_eq!(ids(&take(&target).await), vec![jobs[1].id, jobs[3].id]);
}

#[tokio::test]
async fn retrying_a_parked_retry_waits_for_the_lock_then_runs_first() {
    let Some((_schema, store)) = store("retry of a parked retry").await else {
        return;
    };
    let (a, b, c) = (lock("a"), lock("a"), lock("a"));
    add(&store, vec![a.clone(), b.clone(), c.clone()]).await;
    let first = take(&store).await;
    let waiting = settle(
        &store,
        fail(&first[0], Some(Duration::from_secs(3600)), false),
    )
    .await;
    assert_eq!(waiting.state, JobState::Scheduled);
    assert!(
        waiting.parked,
        "a lock job waiting for its retry gives the lock back"
    );
    let holder = take(&store).await;
    assert_eq!(ids(&holder), vec![b.id]);
    let retried = store.job_retry(a.id).await.expect("retry");
    assert_eq!(retried.state, JobState::Available);
    assert!(retried.parked, "due now, but b holds the lock");
    assert!(take(&store).await.is_empty());
    settle(&store, complete(&holder[0])).await;
    assert_eq!(
        ids(&take(&store).await),
        vec![a.id],
        "a keeps its place ahead of c"
    );
}

#[tokio::test]
async fn parked_jobs_do_not_age_the_queue() {
    let Some((_schema, store)) = store("parked jobs and queue age").await else {
        return;
    };
    add(&store, vec![lock("a"), lock("a")]).await;
    assert_eq!(take(&store).await.len(), 1);
    let q = QueueName::parse("q").expect("queue");
    let info = store.queue_get(&q).await.expect("queue");
    assert_eq!(
        info.oldest_available_age_ms, None,
        "only a parked job waits"
    );
    add(&store, vec![new_job("q", "k")]).await;
    let info = store.queue_get(&q).await.expect("queue");
    assert!(info.oldest_available_age_ms.is_some(), "a ready job counts");
}

fn tenant(key: &str, id: u128) -> NewJob {
    NewJob {
        id: JobId(uuid::Uuid::from_u128(id)),
        ..ordered(JobOrdering {
            fairness_key: Some(key.into()),
            ..JobOrdering::default()
        })
    }
}

/// A batch is ranked as if its jobs came one by one (as SQLite does): a ready job's rank
/// is the base of the ones after it, so a new key starts a step behind the lowest ready
/// rank, the batch's own first job included.
#[tokio::test]
async fn a_batch_ranks_each_job_from_the_ready_ones_before_it() {
    let Some((_schema, store)) = store("fair batch").await else {
        return;
    };
    // a1 takes one step, a2 two; b starts a step behind a1 (two steps), after a2 by id.
    add(&store, vec![tenant("a", 1), tenant("a", 2), tenant("b", 3)]).await;
    let order = ids(&take(&store).await);
    assert_eq!(
        order,
        [1, 2, 3].map(|n| JobId(uuid::Uuid::from_u128(n))).to_vec(),
        "b ranks level with a2, not with a1"
    );
}
