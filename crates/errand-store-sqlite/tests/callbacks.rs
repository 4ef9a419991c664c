//! A job with a `callback_url` records its callback delivery in the transaction that ends
//! it: one pending delivery, due at once, never a second for a repeated settle. Read back
//! with SQL because listing deliveries is not this part's store method.

use std::time::Duration;

use errand_core::delivery::WebhookBody;
use errand_core::{EndNotice, EventType, JobId, NewJob, QueueName};
use errand_store::conformance::new_job;
use errand_store::{JobClaimParams, JobInsertManyParams, JobSettleManyParams, Settlement, Store};
use errand_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

async fn insert(store: &SqliteStore, job: NewJob) -> JobId {
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![job],
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert")
        .remove(0)
        .job
        .id
}

async fn complete(store: &SqliteStore) -> JobId {
    let c = store
        .job_claim(JobClaimParams {
            queue: QueueName::parse("q").expect("queue"),
            worker: "w".into(),
            max: 1,
            lease: Duration::from_secs(60),
            kinds: vec![],
        })
        .await
        .expect("claim")
        .remove(0);
    for _ in 0..2 {
        store
            .job_settle_many(JobSettleManyParams {
                settlements: vec![Settlement::Complete {
                    id: c.job.id,
                    lease_token: c.lease_token,
                    result: Some(json!({"answer": 42})),
                    report: None,
                    session_state: Default::default(),
                }],
                retry_policy: Default::default(),
            })
            .await
            .expect("settle")
            .remove(0)
            .expect("complete, then its repeat");
    }
    c.job.id
}

struct Row {
    job: Vec<u8>,
    event_type: String,
    url: String,
    body: String,
    state: String,
    attempts: i64,
    times: (i64, i64, i64),
    subscription: Option<Vec<u8>>,
}

fn deliveries(path: &std::path::Path) -> Vec<Row> {
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    let mut stmt = raw
        .prepare(
            "SELECT job_id, event_type, url, body, state, attempts, next_at, created_at, \
             updated_at, subscription_id FROM deliveries ORDER BY created_at, id",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok(Row {
            job: r.get(0)?,
            event_type: r.get(1)?,
            url: r.get(2)?,
            body: r.get(3)?,
            state: r.get(4)?,
            attempts: r.get(5)?,
            times: (r.get(6)?, r.get(7)?, r.get(8)?),
            subscription: r.get(9)?,
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_job_with_a_callback_url_records_one_pending_delivery() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteOptions::in_dir(dir.path());
    let store = SqliteStore::open(&options).expect("open");
    let hooked = NewJob {
        notify: EndNotice {
            callback_url: Some("https://example.com/done".into()),
            correlation_id: Some("c-7".into()),
            reply_to: None,
        },
        ..new_job("q", "k")
    };
    insert(&store, new_job("q", "plain")).await;
    complete(&store).await;
    assert!(
        deliveries(&options.path).is_empty(),
        "no callback_url, no delivery"
    );

    insert(&store, hooked.clone()).await;
    let id = complete(&store).await;
    let rows = deliveries(&options.path);
    assert_eq!(rows.len(), 1, "one delivery, not one per settle");
    let d = &rows[0];
    assert_eq!(d.job, id.as_bytes().to_vec());
    assert_eq!(d.event_type, "job.succeeded");
    assert_eq!(d.url, "https://example.com/done");
    assert_eq!(d.state, "pending");
    assert_eq!(d.attempts, 0);
    assert!(d.subscription.is_none());
    assert_eq!(d.times.0, d.times.1, "due at once");
    assert_eq!(d.times.1, d.times.2);
    let body: WebhookBody = serde_json::from_str(&d.body).expect("body");
    assert_eq!(body.event_type, EventType::JobSucceeded);
    assert_eq!(body.data["job"]["result"], json!({"answer": 42}));
    assert_eq!(body.data["job"]["correlation_id"], json!("c-7"));

    let cancelled = insert(
        &store,
        NewJob {
            id: JobId::new(),
            ..hooked
        },
    )
    .await;
    store.job_cancel(cancelled).await.expect("cancel");
    let rows = deliveries(&options.path);
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|d| d.job == cancelled.as_bytes().to_vec() && d.event_type == "job.cancelled"));
}
