//! Gate paths of the SQLite store the shared suite does not walk: a dead lock job
//! requeued in bulk, a session head requeued after it died, gated jobs restored from an
//! export, and the oldest-ready age of a queue whose waiting jobs are all parked.

use std::time::Duration;

use errand_core::ordering::JobOrdering;
use errand_core::{JobState, NewJob, QueueName, RetryPolicy};
use errand_store::conformance::{complete, new_job};
use errand_store::{
    ClaimedJob, DeadSelection, JobClaimParams, JobInsertManyParams, JobSettleManyParams,
    RestoredJob, Settlement, Store,
};
use errand_store_sqlite::{SqliteOptions, SqliteStore};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open");
    (dir, store)
}

fn with(ordering: JobOrdering) -> NewJob {
    NewJob {
        ordering,
        ..new_job("q", "k")
    }
}

fn locked(key: &str) -> NewJob {
    with(JobOrdering {
        lock_key: Some(key.into()),
        ..JobOrdering::default()
    })
}

fn in_session(key: &str) -> NewJob {
    with(JobOrdering {
        session_key: Some(key.into()),
        ..JobOrdering::default()
    })
}

async fn insert(store: &SqliteStore, jobs: Vec<NewJob>) {
    store
        .job_insert_many(JobInsertManyParams {
            jobs,
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
}

async fn claim(store: &SqliteStore) -> Vec<ClaimedJob> {
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

fn ids(c: &[ClaimedJob]) -> Vec<errand_core::JobId> {
    c.iter().map(|c| c.job.id).collect()
}

async fn settle(store: &SqliteStore, s: Settlement) -> errand_core::Job {
    store
        .job_settle_many(JobSettleManyParams {
            settlements: vec![s],
            retry_policy: RetryPolicy::default(),
        })
        .await
        .expect("settle")
        .pop()
        .expect("one")
        .expect("settled")
        .job
}

fn kill(c: &ClaimedJob) -> Settlement {
    Settlement::Fail {
        id: c.job.id,
        lease_token: c.lease_token,
        error: "boom".into(),
        retry_in: None,
        dead: true,
        report: None,
    }
}

#[tokio::test]
async fn a_requeued_dead_lock_job_waits_at_the_back_of_the_line() {
    let (_dir, store) = open();
    let (a1, a2) = (locked("a"), locked("a"));
    insert(&store, vec![a1.clone(), a2.clone()]).await;
    let c1 = claim(&store).await;
    assert_eq!(ids(&c1), vec![a1.id]);
    assert_eq!(settle(&store, kill(&c1[0])).await.state, JobState::Dead);
    let c2 = claim(&store).await;
    assert_eq!(ids(&c2), vec![a2.id], "the dead job freed the lock");
    let n = store
        .dead_requeue_many(DeadSelection::All)
        .await
        .expect("requeue");
    assert_eq!(n, 1);
    let back = store.job_get(a1.id).await.expect("get");
    assert_eq!(back.state, JobState::Available);
    assert!(back.parked, "a2 holds the lock, so the requeued job waits");
    assert!(claim(&store).await.is_empty());
    settle(&store, complete(&c2[0])).await;
    assert_eq!(ids(&claim(&store).await), vec![a1.id]);
}

#[tokio::test]
async fn a_requeued_dead_session_head_takes_its_turn_back() {
    let (_dir, store) = open();
    let (s1, s2) = (in_session("s"), in_session("s"));
    insert(&store, vec![s1.clone(), s2.clone()]).await;
    let c1 = claim(&store).await;
    assert_eq!(ids(&c1), vec![s1.id]);
    settle(&store, kill(&c1[0])).await;
    assert!(claim(&store).await.is_empty(), "the dead head blocks");
    assert_eq!(
        store.session_get("s").await.expect("session").blocked_by,
        Some(s1.id)
    );
    store
        .dead_requeue_many(DeadSelection::All)
        .await
        .expect("requeue");
    let session = store.session_get("s").await.expect("session");
    assert_eq!(session.blocked_by, None);
    assert_eq!(session.head, Some(s1.id));
    assert_eq!(session.length, 2);
    let c = claim(&store).await;
    assert_eq!(ids(&c), vec![s1.id], "the head runs again before s2");
    settle(&store, complete(&c[0])).await;
    assert_eq!(ids(&claim(&store).await), vec![s2.id]);
}

#[tokio::test]
async fn restored_gated_jobs_arrive_in_export_order() {
    let (_dir, exported) = open();
    let jobs = vec![locked("a"), locked("a"), in_session("s"), in_session("s")];
    insert(&exported, jobs.clone()).await;
    let mut restored = Vec::new();
    for j in &jobs {
        let mut job = exported.job_get(j.id).await.expect("get");
        job.parked = false;
        restored.push(RestoredJob {
            secrets: Default::default(),
            job,
            attempts: vec![],
        });
    }
    let (_dir2, store) = open();
    assert_eq!(store.job_restore_many(restored).await.expect("restore"), 4);
    let first = claim(&store).await;
    assert_eq!(
        ids(&first),
        vec![jobs[0].id, jobs[2].id],
        "one job per gate, the first of each"
    );
    assert!(store.job_get(jobs[1].id).await.expect("get").parked);
    for c in &first {
        settle(&store, complete(c)).await;
    }
    assert_eq!(ids(&claim(&store).await), vec![jobs[1].id, jobs[3].id]);
}

#[tokio::test]
async fn parked_jobs_are_not_the_oldest_ready() {
    let (_dir, store) = open();
    insert(&store, vec![locked("a"), locked("a")]).await;
    let running = claim(&store).await;
    assert_eq!(running.len(), 1);
    let q = store
        .queue_get(&QueueName::parse("q").expect("queue"))
        .await
        .expect("queue");
    assert_eq!(q.oldest_available_age_ms, None, "only a parked job waits");
    let tenant = with(JobOrdering {
        fairness_key: Some("t".into()),
        ..JobOrdering::default()
    });
    insert(&store, vec![tenant]).await;
    let q = store
        .queue_get(&QueueName::parse("q").expect("queue"))
        .await
        .expect("queue");
    assert!(
        q.oldest_available_age_ms.is_some(),
        "a ranked ready job counts"
    );
}
