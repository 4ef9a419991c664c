//! PostgreSQL's side of the event log: commit order against sequence order, and the
//! callback delivery a job's end records (read back with SQL, as listing deliveries is not
//! this part's store method).

mod common;

use std::time::Duration;

use common::open;
use errand_core::delivery::WebhookBody;
use errand_core::{EndNotice, EventBody, EventId, EventType, Job, JobId, NewJob, QueueName};
use errand_store::conformance::new_job;
use errand_store::{JobClaimParams, JobInsertManyParams, JobSettleManyParams, Settlement, Store};
use errand_store_postgres::PgStore;
use errand_testkit::eventually;
use serde_json::json;

async fn insert(store: &PgStore, job: NewJob) -> Job {
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![job],
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert")
        .remove(0)
        .job
}

/// Every event after `after` readable now.
async fn read_all(store: &PgStore, after: Option<EventId>) -> Vec<errand_core::Event> {
    store.event_read(after, 1000).await.expect("read").events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_an_older_transaction_commits_late_is_never_skipped() {
    let test = "an_event_an_older_transaction_commits_late_is_never_skipped";
    let Some((_schema, store, raw)) = open(test).await else {
        return;
    };
    // An older transaction writes an event (its xid is taken first) and stays open.
    let early = insert(&store, new_job("q", "early")).await;
    let cursor = eventually(
        "the first event is readable",
        Duration::from_secs(20),
        || async { read_all(&store, None).await.last().map(|e| e.id) },
    )
    .await;
    raw.batch_execute("BEGIN").await.expect("begin");
    let body = EventBody::job(&early, EventType::JobProgress, 0);
    raw.execute(
        "INSERT INTO events (at, type, data) VALUES (0, $1, $2)",
        &[
            &body.event_type.as_str(),
            &serde_json::to_string(&body).expect("json"),
        ],
    )
    .await
    .expect("the older transaction's event");

    // A newer transaction commits its event meanwhile.
    let late = insert(&store, new_job("q", "late")).await;
    // However long a reader looks, it does not get past the open transaction's event: the
    // newer event stays unread while the older one may still commit in front of it.
    for _ in 0..5 {
        assert!(
            read_all(&store, Some(cursor)).await.is_empty(),
            "an event was read while an older transaction could still commit before it"
        );
        let head = store.event_head().await.expect("head");
        assert_eq!(
            head,
            Some(cursor),
            "the head stays before the open transaction"
        );
    }
    raw.batch_execute("COMMIT").await.expect("commit");

    let after = eventually(
        "both events are readable",
        Duration::from_secs(20),
        || async {
            let events = read_all(&store, Some(cursor)).await;
            (events.len() >= 2).then_some(events)
        },
    )
    .await;
    let seen: Vec<(EventType, Option<JobId>)> = after
        .iter()
        .map(|e| (e.body.event_type, e.body.job_id()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (EventType::JobProgress, Some(early.id)),
            (EventType::JobEnqueued, Some(late.id)),
        ],
        "the older transaction's event comes first, and none is skipped"
    );
    assert!(after[0].id < after[1].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_job_with_a_callback_url_records_one_pending_delivery() {
    let test = "an_ended_job_with_a_callback_url_records_one_pending_delivery";
    let Some((_schema, store, raw)) = open(test).await else {
        return;
    };
    let hooked = NewJob {
        notify: EndNotice {
            callback_url: Some("https://example.com/done".into()),
            correlation_id: Some("c-7".into()),
            reply_to: None,
        },
        ..new_job("q", "k")
    };
    insert(&store, new_job("q", "plain")).await;
    insert(&store, hooked.clone()).await;
    let claimed = store
        .job_claim(JobClaimParams {
            queue: QueueName::parse("q").expect("queue"),
            worker: "w".into(),
            max: 2,
            lease: Duration::from_secs(60),
            kinds: vec![],
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let settle = JobSettleManyParams {
        settlements: claimed
            .iter()
            .map(|c| Settlement::Complete {
                id: c.job.id,
                lease_token: c.lease_token,
                result: Some(json!({"answer": 42})),
                report: None,
                session_state: Default::default(),
            })
            .collect(),
        retry_policy: Default::default(),
    };
    for _ in 0..2 {
        for r in store.job_settle_many(settle.clone()).await.expect("settle") {
            r.expect("complete, then its repeat");
        }
    }
    let cancelled = insert(
        &store,
        NewJob {
            id: JobId::new(),
            ..hooked.clone()
        },
    )
    .await;
    store.job_cancel(cancelled.id).await.expect("cancel");

    let rows = raw
        .query(
            "SELECT job_id, event_type, url, body, state, attempts, next_at, created_at, \
             updated_at, subscription_id IS NULL FROM deliveries ORDER BY event_type",
            &[],
        )
        .await
        .expect("deliveries");
    assert_eq!(rows.len(), 2, "one per hooked job's end, none for a repeat");
    let cancel_row = &rows[0];
    assert_eq!(cancel_row.get::<_, uuid::Uuid>(0), cancelled.id.0);
    assert_eq!(cancel_row.get::<_, String>(1), "job.cancelled");
    let d = &rows[1];
    assert_eq!(d.get::<_, uuid::Uuid>(0), hooked.id.0);
    assert_eq!(d.get::<_, String>(1), "job.succeeded");
    assert_eq!(d.get::<_, String>(2), "https://example.com/done");
    assert_eq!(d.get::<_, String>(4), "pending");
    assert_eq!(d.get::<_, i32>(5), 0);
    let (next, created, updated): (i64, i64, i64) = (d.get(6), d.get(7), d.get(8));
    assert_eq!((next, created), (created, updated), "due at once");
    assert!(d.get::<_, bool>(9), "a callback belongs to no subscription");
    let body: WebhookBody = serde_json::from_str(&d.get::<_, String>(3)).expect("body");
    assert_eq!(body.event_type, EventType::JobSucceeded);
    assert_eq!(body.data["job"]["result"], json!({"answer": 42}));
    assert_eq!(body.data["job"]["correlation_id"], json!("c-7"));
}
