//! Returning results: the event stream (`GET /v1/events`) resumed without gap or duplicate
//! after a disconnect, a server restart and a cut-off, across PostgreSQL nodes, and past
//! the retention window; result waiters; progress; `max_result_bytes`; idempotent repeats.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use errand_api::{
    BatchEnqueueRequest, ClaimRequest, CompleteRequest, EnqueueRequest, HeartbeatRequest,
    SettleCompletion, SettleRequest,
};
use errand_client::{Client, EventFollow, EventQuery, EventStreamItem};
use errand_core::{Event, EventId, EventType, JobId, JobState, Progress};
use errand_testkit::{eventually, PgSchema};

use common::{pg_node, server_with};

const WITHIN: Duration = Duration::from_secs(30);

fn enqueued_only() -> EventQuery {
    EventQuery {
        types: vec!["job.enqueued".into()],
        ..EventQuery::default()
    }
}

async fn enqueue_n(client: &Client, queue: &str, n: usize) -> Vec<JobId> {
    let req = BatchEnqueueRequest {
        jobs: (0..n)
            .map(|_| EnqueueRequest {
                queue: Some(queue.into()),
                ..EnqueueRequest::new("work")
            })
            .collect(),
    };
    client
        .enqueue_batch(&req)
        .await
        .expect("enqueue")
        .jobs
        .iter()
        .map(|j| j.id)
        .collect()
}

/// The next `n` events of `follow`, skipping drops (the follower reconnects); panics on a
/// gap or a cut-off, or when they do not come in time.
async fn next_events(follow: &mut EventFollow, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let deadline = Instant::now() + WITHIN;
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, follow.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events came in time", out.len()))
            .expect("stream");
        match item {
            EventStreamItem::Event(e) => out.push(*e),
            EventStreamItem::Disconnected(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

/// Events strictly in id order, no id twice, and exactly the `expected` jobs' enqueues.
fn assert_exactly(events: &[Event], after: Option<EventId>, expected: &[JobId]) {
    let mut prev = after;
    for e in events {
        assert!(prev.is_none_or(|p| e.id > p), "{} after {prev:?}", e.id);
        prev = Some(e.id);
        assert_eq!(e.body.event_type, EventType::JobEnqueued);
    }
    let got: Vec<JobId> = events.iter().filter_map(|e| e.body.job_id()).collect();
    assert_eq!(got, expected, "every job once, in enqueue order");
}

#[tokio::test]
async fn a_stream_resumes_after_a_disconnect_and_a_restart_with_no_gap_and_no_duplicate() {
    let (mut server, _dir) = server_with(&[]).await;
    let client = server.client().expect("client");
    let mut follow = client
        .follow_events(enqueued_only(), None)
        .await
        .expect("follow");
    let first = enqueue_n(&client, "q", 50).await;
    let seen = next_events(&mut follow, 50).await;
    assert_exactly(&seen, None, &first);
    let resume = follow.last_id();
    drop(follow);

    // Missed while disconnected.
    let second = enqueue_n(&client, "q", 50).await;
    let mut follow = client
        .follow_events(enqueued_only(), resume)
        .await
        .expect("resume");
    let third = enqueue_n(&client, "q", 20).await;
    let seen = next_events(&mut follow, 70).await;
    assert_exactly(&seen, resume, &[second, third].concat());
    let resume = follow.last_id();
    drop(follow);

    // Missed while the server was down (killed, not stopped: the log is what survives).
    server.restart().await.expect("restart");
    let client = server.client().expect("client");
    let fourth = enqueue_n(&client, "q", 30).await;
    let mut follow = client
        .follow_events(enqueued_only(), resume)
        .await
        .expect("resume after restart");
    let seen = next_events(&mut follow, 30).await;
    assert_exactly(&seen, resume, &fourth);
    // Nothing more is owed.
    let extra = tokio::time::timeout(Duration::from_millis(300), follow.next()).await;
    assert!(extra.is_err(), "nothing after the last: {extra:?}");
}

#[tokio::test]
async fn the_raw_stream_is_server_sent_events_with_ids_types_and_a_resume_header() {
    let (server, _dir) = server_with(&[]).await;
    let client = server.client().expect("client");
    let http = common::http_client();
    let url = format!("{}/v1/events?type=job.enqueued", server.url());
    let mut resp = http.get(&url).send().await.expect("stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let ids = enqueue_n(&client, "raw", 1).await;
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(WITHIN, resp.chunk())
            .await
            .expect("in time")
            .expect("chunk")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: job.enqueued\n"), "{text}");
    assert!(text.contains(&ids[0].to_string()), "{text}");
    let id_line = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an id line");
    let id: EventId = id_line.parse().expect("event id");
    drop(resp);

    // The header resumes; a bad one is a 400 that says so.
    let later = enqueue_n(&client, "raw", 1).await;
    let mut resp = http
        .get(&url)
        .header("last-event-id", id.to_string())
        .send()
        .await
        .expect("resume");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(WITHIN, resp.chunk())
            .await
            .expect("in time")
            .expect("chunk")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&later[0].to_string()), "{text}");
    assert!(!text.contains(&ids[0].to_string()), "{text}");
    let bad = http
        .get(&url)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);
    let bad = http
        .get(format!("{}/v1/events?type=job.exploded", server.url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);
    // An id past the newest event comes from another store: refused, not silently followed.
    let ahead = http
        .get(&url)
        .header("last-event-id", "999999999-999999999")
        .send()
        .await
        .expect("answer");
    assert_eq!(ahead.status(), 400);
    let body = ahead.text().await.expect("body");
    assert!(body.contains("ahead of the newest event"), "{body}");
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_and_resumes_by_id_without_loss() {
    let (server, _dir) = server_with(&["--event-buffer", "16"]).await;
    let client = server.client().expect("client");
    let mut follow = client
        .follow_events(enqueued_only(), None)
        .await
        .expect("follow");
    // A burst far past the feed's 16 places while this consumer reads nothing, and far
    // past what the connection holds between the server's stream and this reader: the
    // sockets and the HTTP client's buffers took 8,000 events here (with a feed of 1,000
    // places, a burst of 8,000 was never cut off, one of 20,000 always). With a smaller
    // burst, a stream that keeps pace with the tail passes it all into those buffers and
    // never falls behind: with 300 this test depended on the tail outrunning the stream.
    let mut jobs = Vec::new();
    for _ in 0..30 {
        jobs.extend(enqueue_n(&client, "burst", 1000).await);
    }
    let mut events = Vec::new();
    let mut cutoffs = 0;
    let deadline = Instant::now() + WITHIN;
    while events.len() < jobs.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, follow.next())
            .await
            .expect("in time")
            .expect("stream")
        {
            EventStreamItem::Event(e) => events.push(*e),
            EventStreamItem::Cutoff(c) => {
                cutoffs += 1;
                assert!(c.reason.contains("behind"), "{c:?}");
                // Right after the last event sent (`0-0`, the log's start, before any).
                assert_eq!(
                    c.resume_after,
                    Some(events.last().map_or(EventId::default(), |e: &Event| e.id)),
                );
            }
            EventStreamItem::Disconnected(_) => {}
            EventStreamItem::Gap(g) => panic!("no gap expected: {g:?}"),
        }
    }
    assert!(cutoffs >= 1, "the burst overflowed the feed");
    assert_exactly(&events, None, &jobs);
}

#[tokio::test]
async fn a_resume_older_than_the_retention_gets_a_gap_then_the_rest() {
    let (server, _dir) = server_with(&[
        "--event-retention-max",
        "10",
        "--event-prune-interval",
        "100ms",
    ])
    .await;
    let client = server.client().expect("client");
    let mut follow = client
        .follow_events(enqueued_only(), None)
        .await
        .expect("follow");
    enqueue_n(&client, "old", 1).await;
    let first = next_events(&mut follow, 1).await;
    let stale = first[0].id;
    drop(follow);
    let later = enqueue_n(&client, "old", 40).await;
    let http = common::http_client();
    // Once the pruner has run, a resume from the first event is told what it missed.
    let text = eventually("the first events pruned", WITHIN, || async {
        let mut resp = http
            .get(format!("{}/v1/events?type=job.enqueued", server.url()))
            .header("last-event-id", stale.to_string())
            .send()
            .await
            .ok()?;
        let chunk = tokio::time::timeout(Duration::from_secs(2), resp.chunk())
            .await
            .ok()?
            .ok()??;
        let text = String::from_utf8_lossy(&chunk).into_owned();
        text.starts_with("id: ").then_some(())?;
        text.contains("event: gap").then_some(text)
    })
    .await;
    assert!(text.starts_with("id: "), "{text}");
    let mut follow = client
        .follow_events(enqueued_only(), Some(stale))
        .await
        .expect("follow");
    let EventStreamItem::Gap(gap) = follow.next().await.expect("item") else {
        panic!("a gap first");
    };
    assert!(gap.missed_through > stale);
    // What is still kept follows the gap, in order, the newest last.
    let mut rest = Vec::new();
    while rest.last().and_then(|e: &Event| e.body.job_id()) != later.last().copied() {
        match tokio::time::timeout(WITHIN, follow.next())
            .await
            .expect("in time")
            .expect("stream")
        {
            EventStreamItem::Event(e) => rest.push(*e),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(rest.len() <= 10, "at most the kept events: {}", rest.len());
    assert!(rest.first().is_some_and(|e| e.id > gap.missed_through));
}

async fn claim_one(client: &Client, queue: &str) -> errand_api::ClaimedJobView {
    client
        .claim(
            queue,
            &ClaimRequest {
                wait_ms: Some(5000),
                ..ClaimRequest::default()
            },
        )
        .await
        .expect("claim")
        .jobs
        .pop()
        .expect("a job")
}

#[tokio::test]
async fn progress_shows_in_the_job_and_in_the_stream() {
    let (server, _dir) = server_with(&[]).await;
    let client = server.client().expect("client");
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some("prog".into()),
            ..EnqueueRequest::new("work")
        })
        .await
        .expect("enqueue");
    let mut follow = client
        .follow_events(
            EventQuery {
                jobs: vec![job.id.to_string()],
                types: vec!["job.progress".into(), "job.succeeded".into()],
                ..EventQuery::default()
            },
            None,
        )
        .await
        .expect("follow");
    let claimed = claim_one(&client, "prog").await;
    let progress = Progress {
        percent: Some(40.0),
        message: Some("halfway there".into()),
    };
    client
        .heartbeat(
            job.id,
            &HeartbeatRequest {
                lease_token: claimed.lease_token,
                lease_ms: None,
                progress: Some(progress.clone()),
                checkpoint: None,
            },
        )
        .await
        .expect("heartbeat");
    assert_eq!(
        client.job(job.id, None).await.expect("job").progress,
        Some(progress.clone())
    );
    let seen = next_events(&mut follow, 1).await;
    assert_eq!(seen[0].body.event_type, EventType::JobProgress);
    let snap = seen[0].body.job.as_ref().expect("job snapshot");
    assert_eq!(snap.id, job.id);
    assert_eq!(snap.progress, Some(progress));
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: claimed.lease_token,
                result: Some(serde_json::json!({"ok": true})),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");
    let seen = next_events(&mut follow, 1).await;
    assert_eq!(seen[0].body.event_type, EventType::JobSucceeded);
    assert_eq!(
        seen[0].body.job.as_ref().and_then(|j| j.result.clone()),
        Some(serde_json::json!({"ok": true}))
    );
}

#[tokio::test]
async fn a_result_over_max_result_bytes_is_refused_and_the_job_dies_with_the_reason() {
    let (server, _dir) = server_with(&["--max-result-bytes", "100"]).await;
    let client = server.client().expect("client");
    let big = serde_json::json!({ "text": "x".repeat(200) });
    let size = serde_json::to_vec(&big).unwrap().len();
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some("big".into()),
            max_attempts: Some(5),
            ..EnqueueRequest::new("work")
        })
        .await
        .expect("enqueue");
    let claimed = claim_one(&client, "big").await;
    let err = client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: claimed.lease_token,
                result: Some(big.clone()),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect_err("refused");
    assert_eq!(err.status(), Some(413), "{err}");
    assert_eq!(err.code(), Some("result_too_large"), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&size.to_string()) && text.contains("100"),
        "{text}"
    );
    let job = client.job(job.id, None).await.expect("job");
    assert_eq!(
        job.state,
        JobState::Dead,
        "no retry: the same result would come"
    );
    assert!(job.result.is_none(), "never truncated");
    assert!(
        job.error
            .as_deref()
            .is_some_and(|e| e.contains("result_too_large")),
        "{:?}",
        job.error
    );

    // A batch settle: that entry is refused, the other completes.
    let ids = enqueue_n(&client, "big2", 2).await;
    let jobs = client
        .claim(
            "big2",
            &ClaimRequest {
                max: Some(2),
                wait_ms: Some(5000),
                ..ClaimRequest::default()
            },
        )
        .await
        .expect("claim")
        .jobs;
    assert_eq!(jobs.len(), 2);
    let out = client
        .settle(&SettleRequest {
            completions: jobs
                .iter()
                .enumerate()
                .map(|(i, j)| SettleCompletion {
                    id: j.id,
                    lease_token: j.lease_token,
                    result: Some(if i == 0 {
                        big.clone()
                    } else {
                        serde_json::json!(1)
                    }),
                    report: None,
                    session_state: None,
                })
                .collect(),
            failures: vec![],
        })
        .await
        .expect("settle");
    let refused = &out.results[0];
    assert_eq!(
        refused.error.as_ref().map(|e| e.code.as_str()),
        Some("result_too_large")
    );
    assert_eq!(out.results[1].state, Some(JobState::Succeeded));
    let dead = client.job(jobs[0].id, None).await.expect("job");
    assert_eq!(dead.state, JobState::Dead);
    assert!(ids.contains(&dead.id));
}

#[tokio::test]
async fn an_idempotent_enqueue_after_the_end_returns_the_job_with_its_result() {
    let (server, _dir) = server_with(&[]).await;
    let client = server.client().expect("client");
    let req = EnqueueRequest {
        queue: Some("idem".into()),
        idempotency_key: Some("order-42".into()),
        ..EnqueueRequest::new("work")
    };
    let job = client.enqueue(&req).await.expect("enqueue");
    let claimed = claim_one(&client, "idem").await;
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: claimed.lease_token,
                result: Some(serde_json::json!({"receipt": "r-1"})),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");
    let raw = common::Raw::new(&server);
    let (status, again) = raw
        .post(
            "/v1/jobs",
            r#"{"kind":"work","queue":"idem","idempotency_key":"order-42"}"#,
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], job.id.to_string());
    assert_eq!(again["state"], "succeeded");
    assert_eq!(again["result"], serde_json::json!({"receipt": "r-1"}));
}

/// Starts `n` waiters (`GET /v1/jobs/{id}?wait=60s`) on `waiting_on`, then completes the
/// jobs through `worker`; every waiter must come back with its job succeeded, long before
/// its wait would end on its own.
async fn waiters_released(waiting_on: &Client, worker: &Client, queue: &str, n: usize) {
    let ids = enqueue_n(worker, queue, n).await;
    let http = common::http_builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut waiters = tokio::task::JoinSet::new();
    for id in &ids {
        let url = format!("{}/v1/jobs/{id}?wait=60s", waiting_on.base_url());
        let http = http.clone();
        waiters.spawn(async move {
            let resp = http.get(url).send().await.expect("wait");
            let status = resp.status();
            let bytes = resp.bytes().await.expect("answer");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
            let job: errand_core::Job = serde_json::from_slice(&bytes).expect("job");
            (job, Instant::now())
        });
    }
    // Every waiter is parked before any job ends (the server counts waiting calls only
    // through their effect, so give the requests a moment to land, then check none is
    // back yet).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(waiters.len(), n, "no waiter returned before its job ended");
    let mut left: HashSet<JobId> = ids.iter().copied().collect();
    while !left.is_empty() {
        let claimed = worker
            .claim(
                queue,
                &ClaimRequest {
                    max: Some(100),
                    wait_ms: Some(1000),
                    ..ClaimRequest::default()
                },
            )
            .await
            .expect("claim")
            .jobs;
        let completions: Vec<SettleCompletion> = claimed
            .iter()
            .map(|c| SettleCompletion {
                id: c.id,
                lease_token: c.lease_token,
                result: Some(serde_json::json!({"n": 1})),
                report: None,
                session_state: None,
            })
            .collect();
        for c in &completions {
            left.remove(&c.id);
        }
        if !completions.is_empty() {
            worker
                .settle(&SettleRequest {
                    completions,
                    failures: vec![],
                })
                .await
                .expect("settle");
        }
    }
    let ended = Instant::now();
    let mut back = 0;
    while let Some(r) = waiters.join_next().await {
        let (job, at) = r.expect("waiter");
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.result, Some(serde_json::json!({"n": 1})));
        assert!(
            at.duration_since(ended) < Duration::from_secs(10),
            "released when the job ended, not at the end of its wait"
        );
        back += 1;
    }
    assert_eq!(back, n);
    assert!(started.elapsed() < Duration::from_secs(50));
}

#[tokio::test]
async fn a_thousand_waiters_are_released_when_their_jobs_end() {
    let (server, _dir) = server_with(&["--max-waiting", "2000"]).await;
    let client = server.client().expect("client");
    waiters_released(&client, &client, "waited", 1000).await;
}

async fn pg_nodes_with(
    schema: &PgSchema,
    args: &[&str],
) -> Vec<(errand_testkit::ServerProcess, tempfile::TempDir)> {
    let mut out = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut all = vec![
            "--store",
            schema.url.as_str(),
            "--pg-schema",
            schema.name.as_str(),
        ];
        all.extend_from_slice(args);
        let server = errand_testkit::ServerProcess::start_in(&common::bin(), dir.path(), &all)
            .await
            .expect("start node");
        out.push((server, dir));
    }
    out
}

#[tokio::test]
async fn postgres_a_stream_on_one_node_carries_the_events_of_both() {
    let Some(schema) = PgSchema::create("stream_of_two_nodes").await else {
        return;
    };
    let (a, _da) = pg_node(&schema).await;
    let (b, _db) = pg_node(&schema).await;
    let ca = a.client().expect("client");
    let cb = b.client().expect("client");
    let mut follow = ca
        .follow_events(enqueued_only(), None)
        .await
        .expect("follow");
    let from_a = enqueue_n(&ca, "pg", 20).await;
    let from_b = enqueue_n(&cb, "pg", 20).await;
    let seen = next_events(&mut follow, 40).await;
    let ids: Vec<EventId> = seen.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "commit order: {ids:?}");
    let got: HashSet<JobId> = seen.iter().filter_map(|e| e.body.job_id()).collect();
    let want: HashSet<JobId> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(got, want);
    // Resuming on the other node after a disconnect: nothing lost, nothing twice.
    let resume = follow.last_id();
    drop(follow);
    let more = enqueue_n(&ca, "pg", 10).await;
    let mut follow = cb
        .follow_events(enqueued_only(), resume)
        .await
        .expect("resume on b");
    let seen = next_events(&mut follow, 10).await;
    assert_exactly(&seen, resume, &more);
}

#[tokio::test]
async fn postgres_a_thousand_waiters_on_one_node_are_released_when_the_jobs_end_on_another() {
    let Some(schema) = PgSchema::create("waiters_across_nodes").await else {
        return;
    };
    let nodes = pg_nodes_with(&schema, &["--max-waiting", "2000"]).await;
    let ca = nodes[0].0.client().expect("client");
    let cb = nodes[1].0.client().expect("client");
    waiters_released(&ca, &cb, "pgwaited", 1000).await;
}

#[tokio::test]
async fn the_cli_follows_events_as_json_lines_and_a_wait_shows_progress() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let (server, _dir) = server_with(&[]).await;
    let client = server.client().expect("client");
    // From the log's start (`0-0`), so nothing enqueued before it connects is missed.
    let mut events = tokio::process::Command::new(common::bin())
        .args([
            "--server",
            server.url(),
            "--json",
            "events",
            "--queue",
            "cli",
        ])
        .args(["--type", "job.enqueued", "--after", "0-0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("errand events");
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some("cli".into()),
            ..EnqueueRequest::new("work")
        })
        .await
        .expect("enqueue");
    let mut lines = BufReader::new(events.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(WITHIN, lines.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("a line");
    let event: Event = serde_json::from_str(&line).expect("one JSON event per line");
    assert_eq!(event.body.event_type, EventType::JobEnqueued);
    assert_eq!(event.body.job_id(), Some(job.id));
    events.kill().await.expect("stop errand events");

    // `errand jobs wait` on a pipe: a plain line per change, progress included.
    let mut wait = tokio::process::Command::new(common::bin())
        .args([
            "--server",
            server.url(),
            "jobs",
            "wait",
            &job.id.to_string(),
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("errand jobs wait");
    let mut status = BufReader::new(wait.stderr.take().expect("stderr")).lines();
    let first = tokio::time::timeout(WITHIN, status.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("a status line");
    assert!(first.contains("available"), "{first}");
    let claimed = claim_one(&client, "cli").await;
    client
        .heartbeat(
            job.id,
            &HeartbeatRequest {
                lease_token: claimed.lease_token,
                lease_ms: None,
                progress: Some(Progress {
                    percent: Some(50.0),
                    message: Some("half done".into()),
                }),
                checkpoint: None,
            },
        )
        .await
        .expect("heartbeat");
    let progress = tokio::time::timeout(WITHIN, async {
        loop {
            let line = status.next_line().await.expect("read").expect("a line");
            if line.contains("half done") {
                return line;
            }
        }
    })
    .await
    .expect("progress shown while the job runs");
    assert!(
        progress.contains("50.0%") && progress.contains("running"),
        "{progress}"
    );
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: claimed.lease_token,
                result: Some(serde_json::json!("done")),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");
    let out = tokio::time::timeout(WITHIN, wait.wait_with_output())
        .await
        .expect("wait ends with the job")
        .expect("output");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));
}
