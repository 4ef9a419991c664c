//! The script host's `JobHost` over HTTP (what `errand worker` runs definitions through)
//! against a real server process, and the worker protocol additions it uses: run reports on
//! settlements and shipped log lines.

mod common;

use std::time::Duration;

use errand_api::EnqueueRequest;
use errand_client::{Client, HttpJobHost};
use errand_core::{
    JobId, JobKind, JobState, LeaseToken, LogStream, NewLogLine, Progress, QueueName, RunReport,
};
use errand_runner::host::{HostError, HostedJob, JobHost, RunSettlement, RunVerdict};
use serde_json::json;
use tokio::time::Instant;

use common::{server, Raw};

const LEASE: Duration = Duration::from_secs(30);

fn host(client: &Client) -> HttpJobHost {
    HttpJobHost::new(client.clone(), "remote-1", LEASE)
}

fn queue(name: &str) -> QueueName {
    QueueName::parse(name).expect("queue")
}

fn kind(name: &str) -> JobKind {
    JobKind::parse(name).expect("kind")
}

async fn enqueue(client: &Client, queue: &str, kind: &str, payload: serde_json::Value) -> JobId {
    client
        .enqueue(&EnqueueRequest {
            queue: Some(queue.into()),
            payload: Some(payload),
            max_attempts: Some(3),
            ..EnqueueRequest::new(kind)
        })
        .await
        .expect("enqueue")
        .id
}

async fn claim_n(host: &HttpJobHost, q: &str, n: usize) -> Vec<HostedJob> {
    let got = host
        .claim(&queue(q), &[], n as u32, Duration::from_secs(5))
        .await
        .expect("claim");
    assert_eq!(got.len(), n);
    got
}

fn report(exit_code: i32) -> RunReport {
    RunReport {
        exit_code: Some(exit_code),
        signal: None,
        duration_ms: 12,
        cpu_ms: 3,
        max_rss_bytes: 4 << 20,
    }
}

#[tokio::test]
async fn a_claim_leases_the_job_with_what_a_run_needs() {
    let s = server().await;
    let client = s.client().expect("client");
    let host = host(&client);
    let id = enqueue(&client, "media", "resize", json!({"file": "a.png"})).await;
    let other = enqueue(&client, "media", "transcode", json!({})).await;

    let got = host
        .claim(&queue("media"), &[kind("resize")], 10, Duration::ZERO)
        .await
        .expect("claim");
    assert_eq!(got.len(), 1, "only the kinds asked for");
    let job = &got[0].job;
    assert_eq!(job.id, id);
    assert_eq!(job.kind.as_str(), "resize");
    assert_eq!(job.queue.as_str(), "media");
    assert_eq!(job.payload, json!({"file": "a.png"}));
    assert_eq!((job.attempt, job.max_attempts), (1, 3));
    assert_eq!(job.state, JobState::Running);

    let stored = client.job(id, None).await.expect("job");
    assert_eq!(stored.state, JobState::Running);
    assert_eq!(stored.worker.as_deref(), Some("remote-1"));
    assert_eq!(
        client.job(other, None).await.expect("job").state,
        JobState::Available
    );
}

#[tokio::test]
async fn a_claim_long_polls_and_wakes_when_a_job_arrives() {
    let s = server().await;
    let client = s.client().expect("client");
    let host = host(&client);

    let started = Instant::now();
    let none = host
        .claim(&queue("quiet"), &[], 1, Duration::from_millis(400))
        .await
        .expect("claim");
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(350), "it waited");

    let waiting = {
        let host = host.clone();
        tokio::spawn(async move {
            host.claim(&queue("quiet"), &[], 1, Duration::from_secs(20))
                .await
        })
    };
    let started = Instant::now();
    let id = enqueue(&client, "quiet", "ping", json!(1)).await;
    let got = waiting.await.expect("task").expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, id);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken, not timed out"
    );
}

#[tokio::test]
async fn a_heartbeat_records_progress_and_checkpoint_and_a_lost_lease_says_so() {
    let s = server().await;
    let client = s.client().expect("client");
    let host = host(&client);
    let id = enqueue(&client, "hb", "long", json!({})).await;
    let claimed = claim_n(&host, "hb", 1).await.remove(0);

    host.heartbeat(
        id,
        claimed.lease_token,
        Some(Progress {
            percent: Some(40.0),
            message: Some("page 4 of 10".into()),
        }),
        Some(json!({"page": 4})),
    )
    .await
    .expect("heartbeat");
    let stored = client.job(id, None).await.expect("job");
    assert_eq!(stored.checkpoint, Some(json!({"page": 4})));
    let progress = stored.progress.expect("progress");
    assert_eq!(progress.percent, Some(40.0));
    assert_eq!(progress.message.as_deref(), Some("page 4 of 10"));

    assert_eq!(
        host.heartbeat(id, LeaseToken::new(), None, None).await,
        Err(HostError::LeaseLost)
    );
    assert_eq!(
        host.heartbeat(JobId::new(), claimed.lease_token, None, None)
            .await,
        Err(HostError::NotFound)
    );
    client.cancel(id).await.expect("cancel");
    assert_eq!(
        host.heartbeat(id, claimed.lease_token, None, None).await,
        Err(HostError::LeaseLost),
        "a cancelled run must stop"
    );
}

#[tokio::test]
async fn settlements_with_reports_are_answered_in_the_order_given() {
    let s = server().await;
    let client = s.client().expect("client");
    let host = host(&client);
    for i in 0..4 {
        enqueue(&client, "settle", "step", json!(i)).await;
    }
    let got = claim_n(&host, "settle", 4).await;
    let settle = |j: &HostedJob, verdict: RunVerdict, code: i32| RunSettlement {
        id: j.job.id,
        lease_token: j.lease_token,
        verdict,
        report: Some(report(code)),
    };
    // Failures and completions interleaved: the server answers completions first, the
    // host must put the answers back in this order.
    let outcomes = host
        .settle(vec![
            settle(
                &got[0],
                RunVerdict::Fail {
                    error: "exit code 3".into(),
                    retry_in: None,
                    dead: true,
                },
                3,
            ),
            settle(
                &got[1],
                RunVerdict::Complete {
                    result: Some(json!({"rows": 7})),
                },
                0,
            ),
            RunSettlement {
                lease_token: LeaseToken::new(),
                ..settle(&got[2], RunVerdict::Complete { result: None }, 0)
            },
            settle(
                &got[3],
                RunVerdict::Fail {
                    error: "killed by signal 9".into(),
                    retry_in: Some(Duration::from_secs(600)),
                    dead: false,
                },
                137,
            ),
        ])
        .await
        .expect("settle");
    assert_eq!(
        outcomes,
        vec![Ok(()), Ok(()), Err(HostError::LeaseLost), Ok(())]
    );

    let dead = client.job(got[0].job.id, None).await.expect("job");
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.error.as_deref(), Some("exit code 3"));
    let done = client.job(got[1].job.id, None).await.expect("job");
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"rows": 7})));
    let still = client.job(got[2].job.id, None).await.expect("job");
    assert_eq!(
        still.state,
        JobState::Running,
        "a wrong token changes nothing"
    );
    let retry = client.job(got[3].job.id, None).await.expect("job");
    assert_eq!(retry.state, JobState::Scheduled);
    assert!(retry.run_at > jiff::Timestamp::now() + jiff::SignedDuration::from_secs(500));
    for (job, code) in [(&got[0], 3), (&got[1], 0), (&got[3], 137)] {
        let attempts = client
            .attempts(job.job.id)
            .await
            .expect("attempts")
            .attempts;
        assert_eq!(
            attempts[0].report,
            Some(report(code)),
            "the report is kept on its attempt"
        );
    }

    assert_eq!(host.settle(vec![]).await.expect("nothing"), vec![]);
}

#[tokio::test]
async fn single_complete_and_fail_take_a_report() {
    let s = server().await;
    let client = s.client().expect("client");
    let raw = Raw::new(&s);
    enqueue(&client, "single", "one", json!({})).await;
    enqueue(&client, "single", "two", json!({})).await;
    let got = claim_n(&host(&client), "single", 2).await;
    let report = json!({"exit_code": 0, "duration_ms": 5, "cpu_ms": 1, "max_rss_bytes": 1024});
    let (status, body) = raw
        .post(
            &format!("/v1/jobs/{}/complete", got[0].job.id),
            &json!({"lease_token": got[0].lease_token, "report": report}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "succeeded");
    let report = json!({"signal": 9, "duration_ms": 5, "cpu_ms": 1, "max_rss_bytes": 1024});
    let (status, body) = raw
        .post(
            &format!("/v1/jobs/{}/fail", got[1].job.id),
            &json!({"lease_token": got[1].lease_token, "dead": true, "report": report}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "dead");
    let (status, body) = raw
        .post(
            &format!("/v1/jobs/{}/complete", got[0].job.id),
            &json!({"lease_token": got[0].lease_token, "report": {"exit_code": "zero"}})
                .to_string(),
        )
        .await;
    assert_eq!(status, 400, "a report is checked: {body}");
}

#[tokio::test]
async fn log_lines_are_checked_and_fenced_by_the_route() {
    let s = server().await;
    let client = s.client().expect("client");
    let raw = Raw::new(&s);
    let host = host(&client);
    enqueue(&client, "logs", "chatty", json!({})).await;
    let claimed = claim_n(&host, "logs", 1).await.remove(0);
    let id = claimed.job.id;
    let path = format!("/v1/jobs/{id}/logs");
    let line = json!({"at": "2026-01-01T00:00:00Z", "stream": "stdout", "line": "hello"});
    for (body, what) in [
        (
            json!({"lease_token": claimed.lease_token, "attempt": 1, "lines": []}),
            "lines",
        ),
        (
            json!({"lease_token": claimed.lease_token, "attempt": 0, "lines": [line]}),
            "attempt",
        ),
        (
            json!({"lease_token": claimed.lease_token, "attempt": 1, "lines": [
                {"at": "2026-01-01T00:00:00Z", "stream": "stdout", "line": "a\u{0}b"}]}),
            "lines[0].line",
        ),
        (
            json!({"lease_token": claimed.lease_token, "attempt": 1, "lines": [
                {"at": "2026-01-01T00:00:00Z", "stream": "stdin", "line": "x"}]}),
            "stream",
        ),
    ] {
        let (status, answer) = raw.post(&path, &body.to_string()).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(what)),
            "{what}: {answer}"
        );
    }

    // Nothing to ship is not a call.
    host.append_logs(id, 1, claimed.lease_token, vec![])
        .await
        .expect("no lines");
    let lines = vec![
        NewLogLine {
            at: 1_767_225_600_000,
            stream: LogStream::Stdout,
            line: "starting".into(),
        },
        NewLogLine {
            at: 1_767_225_600_001,
            stream: LogStream::Stderr,
            line: "warn\0ing".into(),
        },
    ];
    host.append_logs(id, 1, claimed.lease_token, lines.clone())
        .await
        .expect("lines stored");
    let page = client.job_logs(id, None, None).await.expect("read lines");
    let read: Vec<(&str, &str)> = page
        .lines
        .iter()
        .map(|l| (l.level.as_str(), l.line.as_str()))
        .collect();
    assert_eq!(
        read,
        vec![("INFO", "starting"), ("ERROR", "warn\u{FFFD}ing")]
    );
    assert_eq!(
        host.append_logs(id, 1, LeaseToken::new(), lines).await,
        Err(HostError::LeaseLost),
        "a stale token stores nothing"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_not_final() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let host = host(&client);
    let err = host
        .claim(&queue("default"), &[], 1, Duration::ZERO)
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, HostError::Unavailable(_)), "{err:?}");
    let err = host
        .heartbeat(JobId::new(), LeaseToken::new(), None, None)
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, HostError::Unavailable(_)), "{err:?}");
}
