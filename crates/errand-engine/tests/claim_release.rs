//! A claim whose caller goes away gives its jobs back, and a settle whose caller goes away
//! still announces what it kept, on a real SQLite store.

use std::sync::Arc;
use std::time::Duration;

use errand_core::{Job, JobId, JobState, NewJob, QueueName};
use errand_engine::{ClaimRequest, Engine, EngineConfig};
use errand_store_sqlite::{SqliteOptions, SqliteStore};
use errand_testkit::eventually;
use futures_util::poll;

fn queue() -> QueueName {
    QueueName::parse("q").expect("queue name")
}

fn job() -> NewJob {
    errand_store::conformance::new_job("q", "k")
}

fn claim(wait: Duration) -> ClaimRequest {
    ClaimRequest {
        queue: queue(),
        worker: "w".into(),
        max: 1,
        lease: Duration::from_secs(60),
        kinds: vec![],
        wait,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_dropped_while_the_store_works_gives_the_job_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open");
    let engine = Engine::new(Arc::new(store), EngineConfig::default());
    let id = engine.enqueue_many(vec![job()]).await.expect("enqueue")[0]
        .job
        .id;

    // The first poll hands the claim to the store; once the store has leased the job, the
    // caller goes away without hearing the answer, as a disconnected long-poll does.
    let mut gone = Box::pin(engine.claim(claim(Duration::ZERO)));
    assert!(
        poll!(&mut gone).is_pending(),
        "the store claim is under way"
    );
    until(&engine, id, "the store leased the job", |j| {
        j.state == JobState::Running
    })
    .await;
    drop(gone);

    let back = until(&engine, id, "the job is given back", |j| {
        j.state == JobState::Available
    })
    .await;
    assert_eq!(back.attempt, 0, "the unheard claim is not counted");
    assert!(engine.attempts(id).await.expect("attempts").is_empty());
    let next = engine
        .claim(claim(Duration::from_secs(5)))
        .await
        .expect("claim");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job.attempt, 1);
}

/// A settle kept by the store is announced (its event, its waiters, its queue's claims)
/// even when its caller went away while the store worked, as a disconnected worker's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_dropped_while_the_store_works_is_still_announced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open");
    let engine = Engine::new(Arc::new(store), EngineConfig::default());
    engine.enqueue_many(vec![job()]).await.expect("enqueue");
    let claimed = engine
        .claim(claim(Duration::ZERO))
        .await
        .expect("claim")
        .pop()
        .expect("a job");
    let id = claimed.job.id;
    let mut events = engine.subscribe();
    let mut gone = Box::pin(engine.settle(errand_store::Settlement::Complete {
        id,
        lease_token: claimed.lease_token,
        result: None,
        report: None,
        session_state: None,
    }));
    assert!(
        poll!(&mut gone).is_pending(),
        "the store settle is under way"
    );
    drop(gone);
    let announced = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = events.recv().await.expect("events");
            if event.id == id && event.state == JobState::Succeeded {
                return;
            }
        }
    })
    .await;
    assert!(announced.is_ok(), "the kept completion was never announced");
    assert_eq!(
        engine.job(id, Duration::ZERO).await.expect("get").state,
        JobState::Succeeded
    );
}

/// Reads the job until `ready` holds, for at most 5 s.
async fn until(engine: &Engine, id: JobId, what: &str, ready: impl Fn(&Job) -> bool) -> Job {
    eventually(what, Duration::from_secs(5), || async {
        let job = engine.job(id, Duration::ZERO).await.expect("get");
        ready(&job).then_some(job)
    })
    .await
}
