//! Subscriptions end to end: managed over the API, fed from the event log by the fan-out,
//! filtered, paused when their endpoint keeps failing, shared by two PostgreSQL nodes
//! without a double send; and reply messages claimed by a second worker.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use errand_api::{
    BatchEnqueueRequest, ClaimRequest, CompleteRequest, EnqueueRequest, SubscriptionPatchRequest,
    SubscriptionRequest,
};
use errand_client::Client;
use errand_core::{EventType, Job, SubscriptionState};
use errand_testkit::{eventually, PgSchema, ServerProcess};

use common::receiver::{verifies, Receiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn claim_one(worker: &str) -> ClaimRequest {
    ClaimRequest {
        worker: Some(worker.into()),
        max: Some(1),
        wait_ms: Some(5_000),
        lease_ms: Some(60_000),
        kinds: vec![],
        ..Default::default()
    }
}

async fn run_job(client: &Client, queue: &str, req: EnqueueRequest) -> Job {
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some(queue.into()),
            ..req
        })
        .await
        .expect("enqueue");
    let c = client
        .claim(queue, &claim_one("w1"))
        .await
        .expect("claim")
        .jobs
        .remove(0);
    assert_eq!(c.id, job.id);
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: c.lease_token,
                result: Some(serde_json::json!({"ok": true})),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete")
}

#[tokio::test]
async fn a_queue_filtered_subscription_gets_exactly_the_matching_events() {
    let rx = Receiver::answering(200).await;
    let (server, _dir) =
        common::server_with(&["--webhook-secret", SECRET, "--allow-private-callbacks"]).await;
    let client = server.client().unwrap();
    let sub = client
        .subscription_create(&SubscriptionRequest {
            url: rx.url("/events"),
            events: vec![EventType::JobSucceeded],
            queue: Some("mail".into()),
            description: Some("mail outcomes".into()),
            ..Default::default()
        })
        .await
        .expect("create");
    assert_eq!(sub.state, SubscriptionState::Active);
    // The other queue's job ends first: once the matching one is delivered, the fan-out
    // has read past both, so anything recorded for the other would be there too.
    let other = run_job(&client, "billing", EnqueueRequest::new("send")).await;
    let mine = run_job(&client, "mail", EnqueueRequest::new("send")).await;
    eventually(
        "the matching event arrives",
        Duration::from_secs(20),
        || async { (!rx.received().is_empty()).then_some(()) },
    )
    .await;
    let list = client.subscription_deliveries(sub.id, 100).await.unwrap();
    assert_eq!(list.deliveries.len(), 1, "{list:?}");
    assert_eq!(list.deliveries[0].job, Some(mine.id));
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(body["type"], "job.succeeded");
    assert_eq!(body["data"]["job"]["id"], mine.id.to_string());
    assert_eq!(body["data"]["job"]["queue"], "mail");
    assert!(verifies(SECRET, &got[0]));
    assert!(client
        .job_deliveries(other.id, 10)
        .await
        .unwrap()
        .deliveries
        .is_empty());
}

#[tokio::test]
async fn a_subscription_whose_endpoint_keeps_failing_is_paused_with_its_reason() {
    let rx = Receiver::answering(500).await;
    let (server, _dir) = common::server_with(&[
        "--webhook-secret",
        SECRET,
        "--allow-private-callbacks",
        "--delivery-backoff",
        "50ms",
        "--subscription-pause-after",
        "3",
    ])
    .await;
    let client = server.client().unwrap();
    let sub = client
        .subscription_create(&SubscriptionRequest {
            url: rx.url("/"),
            events: vec![EventType::JobEnqueued],
            ..Default::default()
        })
        .await
        .unwrap();
    client.enqueue(&EnqueueRequest::new("k")).await.unwrap();
    let paused = eventually(
        "the subscription pauses",
        Duration::from_secs(30),
        || async {
            let s = client.subscription(sub.id).await.ok()?;
            (s.state == SubscriptionState::Paused).then_some(s)
        },
    )
    .await;
    let reason = paused.paused_reason.clone().unwrap_or_default();
    assert!(reason.contains('3'), "{reason}");
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(rx.received().len(), 3);
    let resumed = client
        .subscription_set_paused(sub.id, false, None)
        .await
        .unwrap();
    assert_eq!(resumed.state, SubscriptionState::Active);
    assert_eq!(resumed.paused_reason, None);
    assert_eq!(resumed.consecutive_failures, 0);
}

#[tokio::test]
async fn subscriptions_are_managed_and_bad_input_changes_nothing() {
    let (server, _dir) = common::server_with(&["--webhook-secret", SECRET]).await;
    let client = server.client().unwrap();
    let raw = common::Raw::new(&server);
    for bad in [
        r#"{"url":"https://example.com/","events":[]}"#,
        r#"{"url":"ftp://example.com/","events":["job.dead"]}"#,
        r#"{"url":"https://example.com/","events":["job.exploded"]}"#,
        r#"{"url":"https://example.com/","events":["job.dead"],"queue":"no spaces"}"#,
        r#"{"url":"https://example.com/","events":["job.dead"],"color":"red"}"#,
    ] {
        let (status, body) = raw.post("/v1/subscriptions", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert!(client
        .subscriptions()
        .await
        .unwrap()
        .subscriptions
        .is_empty());
    let sub = client
        .subscription_create(&SubscriptionRequest {
            url: "https://example.com/a".into(),
            events: vec![EventType::JobDead],
            kind: Some("send".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let changed = client
        .subscription_update(
            sub.id,
            &SubscriptionPatchRequest {
                url: Some("https://example.com/b".into()),
                kind: Some(None),
                tag: Some(Some("vip".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.url, "https://example.com/b");
    assert_eq!(changed.kind, None);
    assert_eq!(changed.tag.as_deref(), Some("vip"));
    let paused = client
        .subscription_set_paused(sub.id, true, Some("maintenance".into()))
        .await
        .unwrap();
    assert_eq!(paused.paused_reason.as_deref(), Some("maintenance"));
    assert_eq!(client.subscriptions().await.unwrap().subscriptions.len(), 1);
    client.subscription_delete(sub.id).await.unwrap();
    let (status, _) = raw.get(&format!("/v1/subscriptions/{}", sub.id)).await;
    assert_eq!(status, 404);
    let (status, _) = raw.get("/v1/subscriptions/not-a-uuid").await;
    assert_eq!(status, 400);

    let bare = common::server().await;
    let err = bare
        .client()
        .unwrap()
        .subscription_create(&SubscriptionRequest {
            url: "https://example.com/a".into(),
            events: vec![EventType::JobDead],
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no webhook secret"), "{err}");
}

#[tokio::test]
async fn a_reply_is_claimed_by_a_second_worker() {
    let server = common::server().await;
    let client = server.client().unwrap();
    let job = run_job(
        &client,
        "work",
        EnqueueRequest {
            reply_to: Some("replies".into()),
            correlation_id: Some("req-42".into()),
            ..EnqueueRequest::new("compute")
        },
    )
    .await;
    let other = server.client().unwrap();
    let reply = other
        .claim("replies", &claim_one("caller"))
        .await
        .expect("claim reply")
        .jobs
        .remove(0);
    assert_eq!(reply.kind.as_str(), errand_core::reply::REPLY_KIND);
    assert_eq!(reply.payload["job_id"], job.id.to_string());
    assert_eq!(reply.payload["correlation_id"], "req-42");
    assert_eq!(reply.payload["state"], "succeeded");
    assert_eq!(reply.payload["result"]["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_nodes_share_deliveries_and_send_none_twice() {
    let Some(schema) = PgSchema::create("two_nodes_share_deliveries").await else {
        return;
    };
    let rx = Receiver::start(Arc::new(|_, _| (200, Duration::from_millis(150)))).await;
    let args = [
        "--store",
        schema.url.as_str(),
        "--pg-schema",
        schema.name.as_str(),
        "--webhook-secret",
        SECRET,
        "--allow-private-callbacks",
    ];
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let a = ServerProcess::start_in(&common::bin(), da.path(), &args)
        .await
        .unwrap();
    let b = ServerProcess::start_in(&common::bin(), db.path(), &args)
        .await
        .unwrap();
    let client = a.client().unwrap();
    client
        .subscription_create(&SubscriptionRequest {
            url: rx.url("/"),
            events: vec![EventType::JobEnqueued],
            ..Default::default()
        })
        .await
        .unwrap();
    let n = 200;
    client
        .enqueue_batch(&BatchEnqueueRequest {
            jobs: (0..n).map(|_| EnqueueRequest::new("k")).collect(),
        })
        .await
        .unwrap();
    eventually("every event delivered", Duration::from_secs(60), || async {
        (rx.received().len() >= n).then_some(())
    })
    .await;
    let got = rx.received();
    let ids: HashSet<String> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), got.len(), "a delivery was sent twice");
    assert_eq!(got.len(), n);
    // One node sends at most 16 at once: more at once means both nodes sent.
    assert!(
        rx.max_in_flight() > 16,
        "max in flight {}",
        rx.max_in_flight()
    );
    drop(b);
}
