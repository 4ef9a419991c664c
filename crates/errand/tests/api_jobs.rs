//! The jobs API against a real server process.

mod common;

use std::time::Duration;

use errand_api::{
    BatchEnqueueRequest, ClaimRequest, CompleteRequest, EnqueueRequest, JobListQuery,
};
use errand_core::JobState;
use serde_json::json;

use common::{server, Raw};

#[tokio::test]
async fn enqueue_returns_201_and_the_job_reads_back() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, job) = raw
        .post("/v1/jobs", r#"{"kind":"mail.send","queue":"mail","payload":{"to":"a@b.c"},"priority":5,"tags":["x"]}"#)
        .await;
    assert_eq!(status, 201);
    assert_eq!(job["state"], "available");
    let id = job["id"].as_str().expect("id");
    let (status, got) = raw.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["payload"], json!({"to": "a@b.c"}));
    assert_eq!(got["priority"], 5);
    assert_eq!(got["queue"], "mail");
}

#[tokio::test]
async fn idempotency_key_header_returns_the_first_job_with_200() {
    let s = server().await;
    let raw = Raw::new(&s);
    let send = || async {
        let resp = raw
            .http
            .post(format!("{}/v1/jobs", raw.base))
            .header("Idempotency-Key", "order-42")
            .header("content-type", "application/json")
            .body(r#"{"kind":"charge"}"#)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.expect("json");
        (status, body)
    };
    let (s1, first) = send().await;
    let (s2, second) = send().await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["id"], second["id"]);
    let (status, err) = raw
        .post("/v1/jobs", r#"{"kind":"charge","idempotency_key":"other"}"#)
        .await;
    assert_eq!(status, 201, "a different key is a different job: {err}");
}

#[tokio::test]
async fn batch_with_one_bad_job_stores_nothing() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, err) = raw
        .post(
            "/v1/jobs/batch",
            r#"{"jobs":[{"kind":"ok"},{"kind":"ok","queue":"bad queue"}]}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("jobs[1].queue"),
        "{err}"
    );
    let (_, page) = raw.get("/v1/jobs").await;
    assert_eq!(page["jobs"].as_array().expect("jobs").len(), 0);
    let client = s.client().expect("client");
    let out = client
        .enqueue_batch(&BatchEnqueueRequest {
            jobs: (0..3).map(|_| EnqueueRequest::new("ok")).collect(),
        })
        .await
        .expect("batch");
    assert_eq!(out.inserted, 3);
    assert_eq!(
        client
            .jobs(&JobListQuery::default())
            .await
            .expect("list")
            .jobs
            .len(),
        3
    );
}

#[tokio::test]
async fn delayed_job_becomes_available_at_its_time() {
    let s = server().await;
    let client = s.client().expect("client");
    let job = client
        .enqueue(&EnqueueRequest {
            delay: Some(errand_core::duration::FlexDuration(Duration::from_millis(
                300,
            ))),
            ..EnqueueRequest::new("later")
        })
        .await
        .expect("enqueue");
    assert_eq!(job.state, JobState::Scheduled);
    let claim = ClaimRequest {
        max: Some(1),
        wait_ms: Some(5000),
        ..Default::default()
    };
    let got = client.claim("default", &claim).await.expect("claim");
    assert_eq!(
        got.jobs.len(),
        1,
        "the waiting claim gets the job once it is due"
    );
    assert_eq!(got.jobs[0].id, job.id);
    let started = std::time::SystemTime::now();
    let run_at = std::time::SystemTime::UNIX_EPOCH
        + Duration::from_millis(job.run_at.as_millisecond() as u64);
    assert!(started >= run_at, "claimed before its run_at");
}

#[tokio::test]
async fn wait_long_polls_until_the_job_ends() {
    let s = server().await;
    let client = s.client().expect("client");
    let job = client
        .enqueue(&EnqueueRequest::new("slow"))
        .await
        .expect("enqueue");
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.job(job.id, Some("20s")).await })
    };
    let claimed = client
        .claim("default", &ClaimRequest::default())
        .await
        .expect("claim")
        .jobs
        .remove(0);
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: claimed.lease_token,
                result: Some(json!({"sent": true})),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");
    let done = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the wait returned before its 20 s ran out")
        .expect("join")
        .expect("wait");
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"sent": true})));
}

#[tokio::test]
async fn cancel_retry_and_list_filters() {
    let s = server().await;
    let client = s.client().expect("client");
    let a = client
        .enqueue(&EnqueueRequest {
            tags: vec!["vip".into()],
            ..EnqueueRequest::new("a")
        })
        .await
        .expect("a");
    let b = client.enqueue(&EnqueueRequest::new("b")).await.expect("b");
    let cancelled = client.cancel(a.id).await.expect("cancel");
    assert_eq!(cancelled.state, JobState::Cancelled);
    let again = client.cancel(a.id).await.expect_err("finished");
    assert_eq!(again.status(), Some(409));
    let retried = client.retry(a.id).await.expect("retry");
    assert_eq!(retried.state, JobState::Available);
    let vip = client
        .jobs(&JobListQuery {
            tag: Some("vip".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        vip.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![a.id]
    );
    let page = client
        .jobs(&JobListQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(page.jobs[0].id, b.id, "newest first");
    let next = client
        .jobs(&JobListQuery {
            limit: Some(1),
            cursor: page.next_cursor.map(|c| c.to_string()),
            ..Default::default()
        })
        .await
        .expect("page 2");
    assert_eq!(next.jobs[0].id, a.id);
    let missing = client
        .job(errand_core::JobId::new(), None)
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Some("not_found"));
}
