//! `/metrics`, read with a real Prometheus text-format parser after a known workload, on
//! nodes with and without the `api` role; capped label values; and `--log-format json`
//! request lines that carry no payload or header.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use errand_api::{BatchEnqueueRequest, ClaimRequest, CompleteRequest, EnqueueRequest, FailRequest};
use errand_core::JobState;
use errand_testkit::eventually;
use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use common::{bin, server, server_with};

/// The Prometheus text format's content type, as `/metrics` must answer it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` parsed; panics unless it is 200 in the text format.
async fn scrape(base: &str) -> Scrape {
    let resp = common::http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(TEXT_FORMAT)
    );
    let text = resp.text().await.expect("body");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the Prometheus text format")
}

/// The value of the sample `metric` whose labels include every pair of `labels`; `None`
/// when there is none. Histograms answer their `+Inf` bucket (their count).
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = s
        .samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Value::Summary(_) => panic!("{metric} is a summary"),
        })
        .collect();
    assert!(
        matching.len() <= 1,
        "{metric} {labels:?} matches {} samples",
        matching.len()
    );
    matching.first().copied()
}

/// Like [`value`], for a sample that must be there: a misnamed metric or label fails here
/// instead of reading as 0. A counter never incremented has no sample; assert that with
/// `value(..) == None`.
fn count(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    value(s, metric, labels).unwrap_or_else(|| panic!("no sample of {metric} {labels:?}"))
}

fn claim(max: u32) -> ClaimRequest {
    ClaimRequest {
        worker: Some("metrics-test".into()),
        max: Some(max),
        wait_ms: Some(0),
        lease_ms: Some(60_000),
        kinds: vec![],
        ..Default::default()
    }
}

fn job(kind: &str, queue: &str) -> EnqueueRequest {
    EnqueueRequest {
        queue: Some(queue.into()),
        ..EnqueueRequest::new(kind)
    }
}

#[tokio::test]
async fn metrics_count_exactly_what_a_known_workload_did() {
    let s = server().await;
    let client = s.client().expect("client");
    let batch = BatchEnqueueRequest {
        jobs: (0..6).map(|_| job("resize", "media")).collect(),
    };
    let ids: Vec<_> = client
        .enqueue_batch(&batch)
        .await
        .expect("enqueue")
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    // An idempotent repeat is not a new job.
    let keyed = EnqueueRequest {
        idempotency_key: Some("once".into()),
        ..job("resize", "media")
    };
    client.enqueue(&keyed).await.expect("enqueue keyed");
    client.enqueue(&keyed).await.expect("enqueue keyed again");

    let claimed = client.claim("media", &claim(5)).await.expect("claim").jobs;
    assert_eq!(claimed.len(), 5);
    let complete = |lease_token| CompleteRequest {
        lease_token,
        result: None,
        report: None,
        session_state: None,
    };
    let fail = |lease_token, dead| FailRequest {
        lease_token,
        error: Some("boom".into()),
        retry_in_ms: Some(3_600_000),
        dead,
        report: None,
    };
    for c in &claimed[..3] {
        let j = client
            .complete(c.id, &complete(c.lease_token))
            .await
            .expect("complete");
        assert_eq!(j.state, JobState::Succeeded);
    }
    let retried = client
        .fail(claimed[3].id, &fail(claimed[3].lease_token, false))
        .await
        .expect("fail");
    assert_eq!(retried.state, JobState::Scheduled);
    let dead = client
        .fail(claimed[4].id, &fail(claimed[4].lease_token, true))
        .await
        .expect("fail for good");
    assert_eq!(dead.state, JobState::Dead);
    // Of the two jobs never claimed, cancel one.
    let left: Vec<_> = ids
        .iter()
        .filter(|id| !claimed.iter().any(|c| c.id == **id))
        .collect();
    client.cancel(*left[0]).await.expect("cancel");

    let m = scrape(s.url()).await;
    let media = [("queue", "media"), ("kind", "resize")];
    assert_eq!(count(&m, "errand_jobs_enqueued_total", &media), 7.0);
    assert_eq!(count(&m, "errand_jobs_started_total", &media), 5.0);
    assert_eq!(count(&m, "errand_jobs_succeeded_total", &media), 3.0);
    assert_eq!(count(&m, "errand_jobs_failed_total", &media), 2.0);
    assert_eq!(count(&m, "errand_jobs_dead_total", &media), 1.0);
    assert_eq!(count(&m, "errand_jobs_cancelled_total", &media), 1.0);
    assert_eq!(
        value(&m, "errand_jobs_rescued_total", &media),
        None,
        "nothing was rescued"
    );

    let q = [("queue", "media")];
    assert_eq!(
        count(
            &m,
            "errand_claims_total",
            &[("queue", "media"), ("result", "jobs")]
        ),
        1.0
    );
    assert_eq!(
        count(&m, "errand_claim_size", &q),
        1.0,
        "one claim got jobs"
    );
    assert_eq!(count(&m, "errand_claim_size_sum", &q), 5.0, "five of them");
    assert_eq!(count(&m, "errand_job_wait_seconds", &q), 5.0);
    assert_eq!(count(&m, "errand_job_wait_seconds_count", &q), 5.0);
    let run = |outcome| {
        count(
            &m,
            "errand_job_run_seconds",
            &[("queue", "media"), ("outcome", outcome)],
        )
    };
    assert_eq!(run("succeeded"), 3.0);
    assert_eq!(run("failed"), 2.0);
    let settle = |outcome| {
        count(
            &m,
            "errand_job_settle_seconds",
            &[("queue", "media"), ("outcome", outcome)],
        )
    };
    assert_eq!(settle("succeeded"), 3.0);
    assert_eq!(settle("dead"), 1.0);
    assert_eq!(settle("cancelled"), 1.0);
    assert_eq!(
        value(
            &m,
            "errand_job_settle_seconds",
            &[("queue", "media"), ("outcome", "scheduled")]
        ),
        None,
        "a retried job has not ended"
    );

    // Store calls: one insert per enqueue request, one claim, one settle per completion or
    // failure.
    let op = |op| count(&m, "errand_store_operation_seconds", &[("op", op)]);
    assert_eq!(op("job_insert_many"), 3.0);
    assert!(op("job_claim") >= 1.0);
    assert_eq!(op("job_settle_many"), 5.0);
    assert_eq!(op("job_cancel"), 1.0);

    // The queue's figures, from the store.
    let state = |state| {
        count(
            &m,
            "errand_queue_jobs",
            &[("queue", "media"), ("state", state)],
        )
    };
    assert_eq!(state("succeeded"), 3.0);
    assert_eq!(state("dead"), 1.0);
    assert_eq!(state("cancelled"), 1.0);
    assert_eq!(state("scheduled"), 1.0);
    assert_eq!(
        state("available"),
        1.0,
        "seven jobs, five claimed, one cancelled"
    );
    assert_eq!(state("running"), 0.0);
    assert!(value(&m, "errand_queue_oldest_available_age_seconds", &q).is_some());
    assert_eq!(count(&m, "errand_queue_paused", &q), 0.0);
    assert_eq!(count(&m, "errand_queue_stats_ok", &[]), 1.0);
    let node = client.nodes().await.expect("nodes").this_node.to_string();
    assert_eq!(count(&m, "errand_node_info", &[("node", &node)]), 1.0);
    for role in ["api", "worker", "scheduler"] {
        assert_eq!(
            count(&m, "errand_node_role", &[("role", role)]),
            1.0,
            "{role}"
        );
    }

    // Every metric follows Prometheus naming under errand_.
    for name in m.docs.keys() {
        assert!(name.starts_with("errand_"), "{name}");
    }
}

#[tokio::test]
async fn queues_past_the_label_cap_count_under_other() {
    let s = server().await;
    let client = s.client().expect("client");
    let queues = errand_engine::QUEUE_LABEL_CAP + 5;
    // Seen last-named first, so the names this node saw first are not the first by name.
    let batch = BatchEnqueueRequest {
        jobs: (0..queues)
            .rev()
            .map(|i| job("k", &format!("q{i:03}")))
            .collect(),
    };
    client.enqueue_batch(&batch).await.expect("enqueue");

    let m = scrape(s.url()).await;
    let enqueued: Vec<(String, f64)> = m
        .samples
        .iter()
        .filter(|x| x.metric == "errand_jobs_enqueued_total")
        .map(|x| {
            let v = match x.value {
                Value::Counter(v) => v,
                ref other => panic!("{other:?}"),
            };
            (x.labels.get("queue").expect("queue").to_string(), v)
        })
        .collect();
    let named: BTreeSet<&str> = enqueued
        .iter()
        .map(|(q, _)| q.as_str())
        .filter(|q| *q != errand_engine::OVERFLOW_LABEL)
        .collect();
    assert!(
        named.len() <= errand_engine::QUEUE_LABEL_CAP,
        "{} queues kept their names",
        named.len()
    );
    let total: f64 = enqueued.iter().map(|(_, v)| v).sum();
    assert_eq!(total, queues as f64, "every job is counted once");
    let other = count(
        &m,
        "errand_jobs_enqueued_total",
        &[("queue", errand_engine::OVERFLOW_LABEL)],
    );
    assert_eq!(
        other,
        (queues - named.len()) as f64,
        "the rest share __other__"
    );
    assert!(other >= 5.0);
    // The queue gauges follow the same cap.
    let gauge_queues: BTreeSet<&str> = m
        .samples
        .iter()
        .filter(|x| x.metric == "errand_queue_jobs")
        .filter_map(|x| x.labels.get("queue"))
        .collect();
    // The gauges name the first queues by name, whatever this node saw first, so every
    // node names the same ones and `max by (queue)` over nodes is right.
    let named_gauges: BTreeSet<String> = gauge_queues
        .iter()
        .filter(|q| **q != errand_engine::OVERFLOW_LABEL)
        .map(|q| q.to_string())
        .collect();
    let first_by_name: BTreeSet<String> = (0..errand_engine::QUEUE_LABEL_CAP)
        .map(|i| format!("q{i:03}"))
        .collect();
    assert_eq!(named_gauges, first_by_name);
    let other_available = count(
        &m,
        "errand_queue_jobs",
        &[
            ("queue", errand_engine::OVERFLOW_LABEL),
            ("state", "available"),
        ],
    );
    let named_available: f64 = m
        .samples
        .iter()
        .filter(|x| x.metric == "errand_queue_jobs")
        .filter(|x| x.labels.get("state") == Some("available"))
        .filter(|x| x.labels.get("queue") != Some(errand_engine::OVERFLOW_LABEL))
        .map(|x| match x.value {
            Value::Gauge(v) => v,
            ref other => panic!("{other:?}"),
        })
        .sum();
    assert!(other_available >= 5.0);
    assert_eq!(other_available + named_available, queues as f64);
}

#[tokio::test]
async fn a_node_without_the_api_role_serves_metrics_and_health_only() {
    let (s, _dir) = server_with(&["--roles", "worker"]).await;
    let m = scrape(s.url()).await;
    assert_eq!(count(&m, "errand_node_role", &[("role", "worker")]), 1.0);
    assert_eq!(
        value(&m, "errand_node_role", &[("role", "api")]),
        None,
        "no api role"
    );
    assert_eq!(count(&m, "errand_queue_stats_ok", &[]), 1.0);
    let status = common::http_client()
        .get(format!("{}/v1/jobs", s.url()))
        .send()
        .await
        .expect("GET /v1/jobs")
        .status();
    assert_eq!(status, 404, "no API on this node");
}

/// The secrets the log test sends; none may reach the log.
const PAYLOAD_SECRET: &str = "sk_live_payload_do_not_log_7f3a";
const HEADER_SECRET: &str = "tok_header_do_not_log_91c2";
const BAD_BODY_SECRET: &str = "sk_live_bad_body_do_not_log_44e1";

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_request_lines_and_no_payloads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("stderr.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut child = tokio::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("ERRAND_LOG", "info,errand::request=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn errand serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next_line()
        .await
        .expect("stdout")
        .expect("the address line");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address")
        .to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = errand_client::Client::new(&base).expect("client");
    eventually("the server is ready", Duration::from_secs(30), || async {
        client.ready().await.unwrap_or(false).then_some(())
    })
    .await;

    let http = common::http_client();
    let resp = http
        .post(format!("{base}/v1/jobs"))
        .header("authorization", format!("Bearer {HEADER_SECRET}"))
        .json(&serde_json::json!({"kind": "charge", "payload": {"api_key": PAYLOAD_SECRET}}))
        .send()
        .await
        .expect("enqueue");
    assert_eq!(resp.status(), 201);
    let resp = http
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"kind\": \"charge\", \"paylod\": \"{BAD_BODY_SECRET}\"}}"
        ))
        .send()
        .await
        .expect("bad enqueue");
    assert_eq!(resp.status(), 400);

    let log = eventually(
        "the request lines are logged",
        Duration::from_secs(10),
        || async {
            let log = std::fs::read_to_string(&log_path).expect("read log");
            (log.contains("\"status\":201") && log.contains("\"status\":400")).then_some(log)
        },
    )
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;

    let mut requests = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        if v["target"] == "errand::request" {
            requests.push(v);
        }
    }
    let created = requests
        .iter()
        .find(|r| r["status"] == 201)
        .unwrap_or_else(|| panic!("no request line for the enqueue: {log}"));
    assert_eq!(created["method"], "POST", "{created}");
    assert_eq!(created["route"], "/v1/jobs", "{created}");
    assert_eq!(created["level"], "DEBUG", "{created}");
    assert!(
        created["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{created}"
    );
    let refused = requests
        .iter()
        .find(|r| r["status"] == 400)
        .unwrap_or_else(|| panic!("no request line for the bad enqueue: {log}"));
    assert_eq!(
        refused["level"], "INFO",
        "a 4xx is logged at info: {refused}"
    );
    for secret in [PAYLOAD_SECRET, HEADER_SECRET, BAD_BODY_SECRET] {
        assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
    }
}

#[tokio::test]
async fn webhook_attempts_count_by_target_and_outcome() {
    let rx = common::receiver::Receiver::start(std::sync::Arc::new(|n, _| {
        (if n == 0 { 500 } else { 200 }, Duration::ZERO)
    }))
    .await;
    let (s, _dir) = server_with(&[
        "--webhook-secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--allow-private-callbacks",
        "--delivery-backoff",
        "100ms",
    ])
    .await;
    let client = s.client().expect("client");
    let job = client
        .enqueue(&EnqueueRequest {
            callback_url: Some(rx.url("/hook")),
            ..job("render", "hooks")
        })
        .await
        .expect("enqueue");
    let claimed = client.claim("hooks", &claim(1)).await.expect("claim").jobs;
    assert_eq!(claimed.len(), 1);
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: claimed[0].lease_token,
                result: None,
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");

    // The receiver refuses the first attempt and takes the second.
    let m = eventually(
        "the callback is delivered",
        Duration::from_secs(30),
        || async {
            let m = scrape(s.url()).await;
            value(
                &m,
                "errand_webhook_deliveries_total",
                &[("target", "callback"), ("outcome", "delivered")],
            )
            .is_some()
            .then_some(m)
        },
    )
    .await;
    let attempts = |outcome| {
        value(
            &m,
            "errand_webhook_deliveries_total",
            &[("target", "callback"), ("outcome", outcome)],
        )
    };
    assert_eq!(attempts("delivered"), Some(1.0));
    assert_eq!(attempts("retrying"), Some(1.0));
    assert_eq!(attempts("failed"), None, "nothing was given up");
    assert_eq!(rx.received().len(), 2);
}
