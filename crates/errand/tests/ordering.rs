//! Issue 11 over HTTP, through real server processes: bad settings are refused and change
//! nothing, a lock key holds a job back and explain names the holder, a session's state
//! travels through claim and complete, explain's reasons, workers, `[[queues]]` in
//! errand.toml, and two PostgreSQL nodes never run two jobs of one lock key at once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use errand_api::{ClaimRequest, ClaimedJobView, CompleteRequest, EnqueueRequest};
use errand_client::Client;
use errand_core::JobId;
use errand_testkit::{PgSchema, ServerProcess};
use serde_json::{json, Value};

use common::{pg_node, server, server_with, Raw};

async fn claim(client: &Client, queue: &str, worker: &str, max: u32) -> Vec<ClaimedJobView> {
    client
        .claim(
            queue,
            &ClaimRequest {
                worker: Some(worker.into()),
                max: Some(max),
                ..ClaimRequest::default()
            },
        )
        .await
        .expect("claim")
        .jobs
}

async fn complete(client: &Client, job: &ClaimedJobView, session_state: Option<Value>) {
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: job.lease_token,
                result: None,
                report: None,
                session_state,
            },
        )
        .await
        .expect("complete");
}

async fn enqueue(client: &Client, req: EnqueueRequest) -> JobId {
    client.enqueue(&req).await.expect("enqueue").id
}

fn codes(explanation: &Value) -> Vec<String> {
    explanation["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["code"].as_str().expect("code").to_string())
        .collect()
}

fn reason<'a>(explanation: &'a Value, code: &str) -> &'a Value {
    explanation["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {explanation}"))
}

#[tokio::test]
async fn bad_settings_are_refused_with_400_and_change_nothing() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, body) = raw
        .send(
            "PATCH",
            "/v1/queues/q",
            Some(br#"{"concurrency":3,"rate":{"limit":10,"period":"1s"}}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["settings"]["rate"],
        json!({"limit": 10, "period": "1s"})
    );
    for bad in [
        r#"{"concurrency":0}"#,
        r#"{"rate":{"limit":-1,"period":"1s"}}"#,
        r#"{"rate":{"limit":0,"period":"1s"}}"#,
        r#"{"rate":{"limit":5,"period":"0s"}}"#,
        r#"{"rate":{"limit":5,"period":"-1s"}}"#,
        r#"{"backoff":{"base":"1h","max":"1s"}}"#,
        r#"{"concurrency":1,"speed":2}"#,
    ] {
        let (status, body) = raw
            .send("PATCH", "/v1/queues/q", Some(bad.as_bytes().to_vec()))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, q) = raw.get("/v1/queues/q").await;
    assert_eq!(q["settings"]["concurrency"], 3, "{q}");
    assert_eq!(q["settings"]["rate"]["limit"], 10, "{q}");

    for bad in [
        r#"{"concurrency":0}"#,
        r#"{"rate":{"limit":0,"period":"1s"}}"#,
        r#"{}"#,
        r#"{"concurrency":null,"rate":null}"#,
    ] {
        let (status, body) = raw
            .send("PUT", "/v1/limits/kind/mail", Some(bad.as_bytes().to_vec()))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = raw
        .send(
            "PUT",
            "/v1/limits/key/partner",
            Some(br#"{"concurrency":2}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 400, "a rate key takes a rate only: {body}");
    let (status, body) = raw
        .send(
            "PUT",
            "/v1/limits/queue/q",
            Some(br#"{"concurrency":2}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 400, "queue limits are queue settings: {body}");
    assert!(body.to_string().contains("queue settings"), "{body}");
    let (status, _) = raw.get("/v1/limits/kind/mail").await;
    assert_eq!(status, 404);
    let (_, list) = raw.get("/v1/limits").await;
    assert_eq!(list["limits"], json!([]));

    let (status, body) = raw
        .send(
            "PUT",
            "/v1/sessions/s1/state",
            Some(br#"{"state": nope, "version": 0}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = raw.get("/v1/sessions/s1").await;
    assert_eq!(status, 404, "a refused state created no session");

    let (status, body) = raw
        .send(
            "PUT",
            "/v1/sessions/s1/state",
            Some(br#"{"state":{"cursor":1},"version":0}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    let (status, body) = raw
        .send(
            "PUT",
            "/v1/sessions/s1/state",
            Some(br#"{"state":{"cursor":2},"version":0}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "version_conflict", "{body}");
    let (_, session) = raw.get("/v1/sessions/s1").await;
    assert_eq!(session["state"], json!({"cursor": 1}));
    assert_eq!(session["version"], 1);

    let (status, body) = raw
        .post(
            "/v1/jobs",
            r#"{"kind":"k","lock_key":"a","session_key":"b"}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw
        .post(
            "/v1/jobs",
            r#"{"kind":"k","concurrency_key":"c","concurrency_limit":0}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, jobs) = raw.get("/v1/jobs").await;
    assert_eq!(jobs["jobs"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_held_lock_key_keeps_the_second_job_back_until_the_first_completes() {
    let s = server().await;
    let client = s.client().expect("client");
    let raw = Raw::new(&s);
    let locked = |q: &str| EnqueueRequest {
        queue: Some(q.into()),
        lock_key: Some("account-7".into()),
        ..EnqueueRequest::new("charge")
    };
    let first = enqueue(&client, locked("billing")).await;
    let second = enqueue(&client, locked("billing")).await;

    let claimed = claim(&client, "billing", "w1", 10).await;
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![first]
    );
    assert!(claim(&client, "billing", "w1", 10).await.is_empty());

    let (status, why) = raw.get(&format!("/v1/jobs/{second}/explain")).await;
    assert_eq!(status, 200, "{why}");
    assert_eq!(codes(&why), vec!["lock_held"], "{why}");
    let held = reason(&why, "lock_held");
    assert_eq!(held["jobs"], json!([first.to_string()]));
    assert!(
        why["summary"]
            .as_str()
            .expect("summary")
            .contains(&first.to_string()),
        "{why}"
    );

    complete(&client, &claimed[0], None).await;
    let next = claim(&client, "billing", "w1", 10).await;
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), vec![second]);
}

#[tokio::test]
async fn a_session_state_travels_through_claim_complete_and_get() {
    let s = server().await;
    let client = s.client().expect("client");
    let raw = Raw::new(&s);
    let in_session = || EnqueueRequest {
        queue: Some("orders".into()),
        session_key: Some("order-42".into()),
        ..EnqueueRequest::new("step")
    };
    let a = enqueue(&client, in_session()).await;
    let b = enqueue(&client, in_session()).await;

    let claimed = claim(&client, "orders", "w", 10).await;
    assert_eq!(claimed.len(), 1, "one at a time");
    assert_eq!(claimed[0].id, a);
    let session = claimed[0]
        .session
        .clone()
        .expect("a session job carries its session");
    assert_eq!((session.key.as_str(), session.version), ("order-42", 0));
    assert_eq!(session.state, Value::Null);
    complete(&client, &claimed[0], Some(json!({"paid": true}))).await;

    let (_, got) = raw.get("/v1/sessions/order-42").await;
    assert_eq!(got["state"], json!({"paid": true}), "{got}");
    assert_eq!(got["version"], 1);
    assert_eq!(got["head"], json!(b.to_string()));
    assert_eq!(got["length"], 1);

    let claimed = claim(&client, "orders", "w", 10).await;
    assert_eq!(claimed[0].id, b);
    let session = claimed[0].session.clone().expect("session");
    assert_eq!(session.state, json!({"paid": true}));
    assert_eq!(session.version, 1);

    // A job outside any session cannot write one.
    enqueue(
        &client,
        EnqueueRequest {
            queue: Some("plain".into()),
            ..EnqueueRequest::new("k")
        },
    )
    .await;
    let plain = claim(&client, "plain", "w", 1).await;
    let (status, body) = raw
        .post(
            &format!("/v1/jobs/{}/complete", plain[0].id),
            &json!({"lease_token": plain[0].lease_token, "session_state": {"x": 1}}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let (_, list) = raw.get("/v1/sessions").await;
    assert_eq!(list["sessions"][0]["key"], "order-42", "{list}");
}

#[tokio::test]
async fn explain_says_paused_run_at_rate_limited_and_no_worker_and_workers_are_listed() {
    let s = server().await;
    let client = s.client().expect("client");
    let raw = Raw::new(&s);

    // Nobody ever asked for queue `lonely`.
    let lonely = enqueue(
        &client,
        EnqueueRequest {
            queue: Some("lonely".into()),
            ..EnqueueRequest::new("k")
        },
    )
    .await;
    let (_, why) = raw.get(&format!("/v1/jobs/{lonely}/explain")).await;
    assert_eq!(codes(&why), vec!["no_worker"], "{why}");
    // Once a worker asks, it is ready, and the worker is listed.
    assert!(claim(&client, "elsewhere", "w-7", 1).await.is_empty());
    let (_, workers) = raw.get("/v1/workers").await;
    assert_eq!(workers["workers"][0]["name"], "w-7", "{workers}");
    assert_eq!(workers["workers"][0]["queues"], json!(["elsewhere"]));
    assert_eq!(workers["workers"][0]["jobs_in_flight"], 0);

    // Delayed, in a paused queue.
    let delayed = enqueue(
        &client,
        EnqueueRequest {
            queue: Some("later".into()),
            delay: Some(errand_core::duration::FlexDuration(Duration::from_secs(
                3600,
            ))),
            ..EnqueueRequest::new("k")
        },
    )
    .await;
    client.set_paused("later", true).await.expect("pause");
    let (_, why) = raw.get(&format!("/v1/jobs/{delayed}/explain")).await;
    let c = codes(&why);
    assert_eq!(&c[..2], ["queue_paused", "run_at_future"], "{why}");
    let job = client.job(delayed, None).await.expect("job");
    assert_eq!(
        reason(&why, "run_at_future")["until"],
        json!(job.run_at.to_string())
    );

    // One start an hour: the second job waits for the next token.
    let (status, body) = raw
        .send(
            "PATCH",
            "/v1/queues/metered",
            Some(br#"{"rate":{"limit":1,"period":"1h"}}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        enqueue(
            &client,
            EnqueueRequest {
                queue: Some("metered".into()),
                ..EnqueueRequest::new("k")
            },
        )
        .await;
    }
    let taken = claim(&client, "metered", "w-8", 10).await;
    assert_eq!(taken.len(), 1, "the rate lets one start");
    let (_, page) = raw.get("/v1/jobs?queue=metered&state=available").await;
    let waiting = page["jobs"][0]["id"]
        .as_str()
        .expect("a waiting job")
        .to_string();
    let (_, why) = raw.get(&format!("/v1/jobs/{waiting}/explain")).await;
    let limited = reason(&why, "rate_limited");
    let until: jiff::Timestamp = limited["until"]
        .as_str()
        .expect("until")
        .parse()
        .expect("timestamp");
    let ahead = until.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((3000..=3600).contains(&ahead), "{why}");
    let (_, workers) = raw.get("/v1/workers").await;
    assert_eq!(
        workers["workers"][0]["name"], "w-8",
        "latest first: {workers}"
    );
    assert_eq!(workers["workers"][0]["jobs_in_flight"], 1);
}

#[tokio::test]
async fn queues_and_limits_in_errand_toml_are_put_in_place_and_bad_ones_stop_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        r#"
[[queues]]
name = "mail"
concurrency = 2
rate = { limit = 100, period = "1s", burst = 200 }
max_attempts = 5
timeout = "30s"
backoff = { base = "1s", max = "1h" }

[[limits]]
scope = "kind"
name = "report"
concurrency = 1
"#,
    )
    .expect("write config");
    let config = config.to_str().expect("utf-8 path").to_string();
    let (s, _data) = server_with(&["--config", &config]).await;
    let raw = Raw::new(&s);
    let (_, q) = raw.get("/v1/queues/mail").await;
    assert_eq!(
        q["settings"],
        json!({
            "concurrency": 2,
            "rate": {"limit": 100, "period": "1s", "burst": 200},
            "defaults": {"max_attempts": 5, "timeout": "30s", "backoff": {"base": "1s", "max": "1h"}}
        }),
        "{q}"
    );
    let (status, limit) = raw.get("/v1/limits/kind/report").await;
    assert_eq!(status, 200, "{limit}");
    assert_eq!(limit["concurrency"], 1);
    // The queue's defaults fill what an enqueue leaves out, and only that.
    let (_, job) = raw.post("/v1/jobs", r#"{"kind":"k","queue":"mail"}"#).await;
    assert_eq!(job["max_attempts"], 5, "{job}");
    assert_eq!(job["timeout_ms"], 30_000, "{job}");
    let (_, job) = raw
        .post(
            "/v1/jobs",
            r#"{"kind":"k","queue":"mail","max_attempts":2}"#,
        )
        .await;
    assert_eq!(job["max_attempts"], 2, "{job}");
    let (_, job) = raw
        .post("/v1/jobs", r#"{"kind":"k","queue":"other"}"#)
        .await;
    assert_eq!(
        job["max_attempts"],
        errand_core::limits::DEFAULT_MAX_ATTEMPTS,
        "{job}"
    );
    drop(s);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[queues]]\nname = \"mail\"\nconcurrency = 0\n").expect("write");
    let out = tokio::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("serve stops at once")
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("[[queues]] `mail`") && stderr.contains("concurrency"),
        "{stderr}"
    );
}

/// Claims and completes lock-key jobs on one node until every job is done, counting the
/// jobs this test holds at once across both nodes. A worker leaves the count *before* it
/// completes, so the other node can only claim the next job after the count dropped: any
/// count above one is two jobs of the key running at once.
async fn lock_worker(
    client: Client,
    name: &'static str,
    held: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    total: usize,
) {
    while done.load(Ordering::SeqCst) < total {
        let jobs = client
            .claim(
                "locked",
                &ClaimRequest {
                    worker: Some(name.into()),
                    max: Some(5),
                    wait_ms: Some(200),
                    ..ClaimRequest::default()
                },
            )
            .await
            .expect("claim")
            .jobs;
        assert!(
            jobs.len() <= 1,
            "one claim took {} jobs of one lock key",
            jobs.len()
        );
        for job in jobs {
            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            held.fetch_sub(1, Ordering::SeqCst);
            complete(&client, &job, None).await;
            done.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_nodes_never_run_two_jobs_of_one_lock_key_at_once() {
    let Some(schema) = PgSchema::create("ordering_lock_nodes").await else {
        return;
    };
    let (a, _da): (ServerProcess, _) = pg_node(&schema).await;
    let (b, _db): (ServerProcess, _) = pg_node(&schema).await;
    let total = 30;
    let ca = a.client().expect("client");
    for i in 0..total {
        let client = if i % 2 == 0 {
            &ca
        } else {
            &b.client().expect("client")
        };
        enqueue(
            client,
            EnqueueRequest {
                queue: Some("locked".into()),
                lock_key: Some("the-one".into()),
                ..EnqueueRequest::new("k")
            },
        )
        .await;
    }
    let held = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let wa = tokio::spawn(lock_worker(
        a.client().expect("client"),
        "on-a",
        held.clone(),
        most.clone(),
        done.clone(),
        total,
    ));
    let wb = tokio::spawn(lock_worker(
        b.client().expect("client"),
        "on-b",
        held.clone(),
        most.clone(),
        done.clone(),
        total,
    ));
    tokio::time::timeout(Duration::from_secs(120), async {
        wa.await.expect("worker a");
        wb.await.expect("worker b");
    })
    .await
    .expect("every job done in time");
    assert_eq!(done.load(Ordering::SeqCst), total);
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "two jobs of one lock key ran at once"
    );
}

#[tokio::test]
async fn workers_seen_just_before_a_graceful_shutdown_are_kept() {
    let mut s = server().await;
    let client = s.client().expect("client");
    assert!(claim(&client, "nightly", "last-word", 1).await.is_empty());
    assert!(s.terminate().await, "graceful stop");
    s.restart().await.expect("restart");
    let (_, workers) = Raw::new(&s).get("/v1/workers").await;
    assert_eq!(workers["workers"][0]["name"], "last-word", "{workers}");
    assert_eq!(workers["workers"][0]["queues"], json!(["nightly"]));
}
