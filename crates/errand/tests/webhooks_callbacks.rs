//! Job callbacks end to end: a real server signs and POSTs a job's end to real receivers
//! on loopback (allowed by configuration), retries failures with backoff, bounds slow
//! receivers, refuses private targets unless allowed, and keeps a pending callback across
//! a SIGKILL.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use errand_api::{ClaimRequest, CompleteRequest, EnqueueRequest};
use errand_client::Client;
use errand_core::{DeliveryState, Job, JobId};
use errand_testkit::{eventually, ServerProcess};

use common::receiver::{verifies, Receiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Enqueues a job with `callback_url`, then claims and completes it with a result.
async fn run_job_with_callback(client: &Client, queue: &str, url: &str) -> Job {
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some(queue.into()),
            callback_url: Some(url.into()),
            correlation_id: Some("order-17".into()),
            ..EnqueueRequest::new("render")
        })
        .await
        .expect("enqueue");
    let claimed = client
        .claim(
            queue,
            &ClaimRequest {
                worker: Some("w".into()),
                max: Some(1),
                wait_ms: Some(5_000),
                lease_ms: Some(60_000),
                kinds: vec![],
                ..Default::default()
            },
        )
        .await
        .expect("claim")
        .jobs
        .remove(0);
    assert_eq!(claimed.id, job.id);
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: claimed.lease_token,
                result: Some(serde_json::json!({"pages": 3})),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete")
}

async fn delivery_settled(client: &Client, job: JobId) -> errand_core::Delivery {
    eventually("the callback settles", Duration::from_secs(30), || async {
        let list = client.job_deliveries(job, 10).await.ok()?;
        let d = list.deliveries.into_iter().next()?;
        (d.state != DeliveryState::Pending).then_some(d)
    })
    .await
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_three_signed_attempts_with_one_id() {
    let rx = Receiver::start(Arc::new(|n, _| {
        (if n < 2 { 500 } else { 200 }, Duration::ZERO)
    }))
    .await;
    let (server, _dir) = common::server_with(&[
        "--webhook-secret",
        SECRET,
        "--allow-private-callbacks",
        "--delivery-backoff",
        "100ms",
    ])
    .await;
    let client = server.client().unwrap();
    let job = run_job_with_callback(&client, "cb", &rx.url("/hook?x=1")).await;
    let d = delivery_settled(&client, job.id).await;
    assert_eq!(d.state, DeliveryState::Succeeded, "{d:?}");
    assert_eq!(d.attempts, 3);
    assert_eq!(
        d.history.iter().map(|a| a.status).collect::<Vec<_>>(),
        vec![Some(500), Some(500), Some(200)]
    );
    assert!(d.history[0].error.as_deref().unwrap().contains("500"));
    assert!(d.history[2].error.is_none());
    let got = rx.received();
    assert_eq!(got.len(), 3);
    for r in &got {
        assert_eq!(r.header("webhook-id"), d.id.to_string());
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.header("user-agent").starts_with("errand/"));
        assert!(verifies(SECRET, r), "signature of {r:?}");
        assert_eq!(r.body, got[0].body, "the same body on every attempt");
    }
    let body = got[0].json();
    assert_eq!(body["type"], "job.succeeded");
    assert_eq!(body["data"]["job"]["id"], job.id.to_string());
    assert_eq!(body["data"]["job"]["result"]["pages"], 3);
    assert_eq!(body["data"]["job"]["correlation_id"], "order-17");
}

#[tokio::test]
async fn a_receiver_knowing_only_the_old_secret_verifies_during_rotation() {
    let rx = Receiver::answering(204).await;
    let (server, _dir) = common::server_with(&[
        "--webhook-secret",
        SECRET,
        "--webhook-secret",
        OLD_SECRET,
        "--allow-private-callbacks",
    ])
    .await;
    let client = server.client().unwrap();
    let job = run_job_with_callback(&client, "rot", &rx.url("/")).await;
    let d = delivery_settled(&client, job.id).await;
    assert_eq!(d.state, DeliveryState::Succeeded);
    let r = &rx.received()[0];
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(OLD_SECRET, r), "old secret");
    assert!(verifies(SECRET, r), "new secret");
    assert!(!verifies("whsec_ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZm", r));
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_is_retried() {
    let rx = Receiver::start(Arc::new(|n, _| {
        (
            200,
            if n == 0 {
                Duration::from_secs(3)
            } else {
                Duration::ZERO
            },
        )
    }))
    .await;
    let (server, _dir) = common::server_with(&[
        "--webhook-secret",
        SECRET,
        "--allow-private-callbacks",
        "--delivery-timeout",
        "500ms",
        "--delivery-backoff",
        "100ms",
    ])
    .await;
    let client = server.client().unwrap();
    let job = run_job_with_callback(&client, "slow", &rx.url("/")).await;
    let d = delivery_settled(&client, job.id).await;
    assert_eq!(d.state, DeliveryState::Succeeded, "{d:?}");
    assert_eq!(d.attempts, 2);
    let first = &d.history[0];
    assert!(first.status.is_none());
    assert!(
        first
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 500ms"),
        "{first:?}"
    );
    assert!(first.duration_ms < 2_500, "{first:?}");
}

#[tokio::test]
async fn a_private_target_is_refused_unless_allowed() {
    let rx = Receiver::answering(200).await;
    let (server, _dir) = common::server_with(&[
        "--webhook-secret",
        SECRET,
        "--delivery-backoff",
        "100ms",
        "--delivery-retry-for",
        "1s",
    ])
    .await;
    let client = server.client().unwrap();
    let job = run_job_with_callback(&client, "priv", &rx.url("/")).await;
    let d = delivery_settled(&client, job.id).await;
    assert_eq!(d.state, DeliveryState::Failed, "{d:?}");
    let err = d.history[0].error.clone().unwrap();
    assert!(err.contains("address refused"), "{err}");
    assert!(err.contains("127.0.0.1 (loopback)"), "{err}");
    assert!(err.contains("allow_private_callbacks"), "{err}");
    assert!(rx.received().is_empty(), "the receiver saw nothing");
}

#[tokio::test]
async fn callbacks_are_refused_without_a_secret() {
    let server = common::server().await;
    let client = server.client().unwrap();
    let err = client
        .enqueue(&EnqueueRequest {
            callback_url: Some("https://example.com/hook".into()),
            ..EnqueueRequest::new("k")
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no webhook secret"), "{err}");
    assert!(client
        .jobs(&Default::default())
        .await
        .unwrap()
        .jobs
        .is_empty());
}

#[tokio::test]
async fn a_callback_pending_when_the_server_is_killed_is_delivered_after_restart() {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let rx = Receiver::start(Arc::new(move |_, _| {
        (
            if flag.load(Ordering::SeqCst) {
                200
            } else {
                503
            },
            Duration::ZERO,
        )
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--webhook-secret",
        SECRET,
        "--allow-private-callbacks",
        // Long enough that the kill lands between attempts: a kill during an attempt
        // leaves the delivery leased (timeout + 30 s) past this test's wait.
        "--delivery-backoff",
        "3s",
    ];
    let mut server = ServerProcess::start_in(&common::bin(), dir.path(), &args)
        .await
        .unwrap();
    let client = server.client().unwrap();
    let job = run_job_with_callback(&client, "kill", &rx.url("/")).await;
    eventually(
        "a first failed attempt, settled",
        Duration::from_secs(20),
        || async {
            let list = client.job_deliveries(job.id, 10).await.ok()?;
            let d = list.deliveries.into_iter().next()?;
            d.last_error.is_some().then_some(())
        },
    )
    .await;
    server.kill9().await;
    up.store(true, Ordering::SeqCst);
    server.restart().await.unwrap();
    let client = server.client().unwrap();
    let d = delivery_settled(&client, job.id).await;
    assert_eq!(d.state, DeliveryState::Succeeded, "{d:?}");
    let got = rx.received();
    assert!(got.len() >= 2);
    assert!(got
        .iter()
        .all(|r| r.header("webhook-id") == d.id.to_string()));
    assert_eq!(got.last().unwrap().answered, 200);
}

#[tokio::test]
async fn a_secret_that_is_not_whsec_base64_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, says) in [
        ("hunter2", "whsec_"),
        ("whsec_***", "not base64"),
        ("whsec_AAAA", "at least 16"),
    ] {
        let out = tokio::process::Command::new(common::bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--webhook-secret", SECRET, "--webhook-secret", bad])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{bad} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("webhook_secrets[1]"), "{err}");
        assert!(err.contains(says), "{bad}: {err}");
    }
}
