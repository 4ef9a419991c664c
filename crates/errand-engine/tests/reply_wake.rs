//! A job that ends leaves its reply in `reply_to`; a claim parked on that queue wakes at
//! once instead of waiting for its next re-check. On a real SQLite store.

use std::sync::Arc;
use std::time::Duration;

use errand_core::reply::REPLY_KIND;
use errand_core::{EndNotice, NewJob, QueueName};
use errand_engine::{ClaimRequest, Engine, EngineConfig};
use errand_store::Settlement;
use errand_store_sqlite::{SqliteOptions, SqliteStore};
use errand_testkit::eventually;

fn claim(queue: &str, wait: Duration) -> ClaimRequest {
    ClaimRequest {
        queue: QueueName::parse(queue).expect("queue name"),
        worker: "w".into(),
        max: 1,
        lease: Duration::from_secs(60),
        kinds: vec![],
        wait,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_parked_on_the_reply_queue_wakes_when_the_job_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open");
    // Re-checks far apart: only a wake-up can hand the reply over within the test's bound.
    let engine = Arc::new(Engine::new(
        Arc::new(store),
        EngineConfig {
            claim_recheck: Duration::from_secs(120),
            ..EngineConfig::default()
        },
    ));
    let replies = QueueName::parse("replies").expect("queue name");
    let waiter = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .claim(claim("replies", Duration::from_secs(60)))
                .await
        })
    };
    eventually(
        "the reply claim is parked",
        Duration::from_secs(5),
        || async { (engine.waiting_claims(&replies) == 1).then_some(()) },
    )
    .await;

    engine
        .enqueue_many(vec![NewJob {
            notify: EndNotice {
                reply_to: Some(replies.clone()),
                correlation_id: Some("req-9".into()),
                callback_url: None,
            },
            ..errand_store::conformance::new_job("work", "k")
        }])
        .await
        .expect("enqueue");
    let c = engine
        .claim(claim("work", Duration::ZERO))
        .await
        .expect("claim")
        .remove(0);
    engine
        .settle(Settlement::Complete {
            id: c.job.id,
            lease_token: c.lease_token,
            result: None,
            report: None,
            session_state: Default::default(),
        })
        .await
        .expect("complete");

    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the parked claim woke well before its re-check")
        .expect("join")
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.kind.as_str(), REPLY_KIND);
    assert_eq!(got[0].job.correlation_id.as_deref(), Some("req-9"));
}
