//! The remote worker protocol against a real server process.

mod common;

use std::time::Duration;

use errand_api::{
    ClaimRequest, CompleteRequest, DeadSelectionRequest, EnqueueRequest, FailRequest,
    HeartbeatRequest, JobListQuery, ReleaseRequest, SettleCompletion, SettleFailure, SettleRequest,
};
use errand_core::{JobState, Progress};
use serde_json::json;

use common::server;
use errand_client::Client;
use errand_testkit::eventually;
use tokio::time::Instant;

fn claim(max: u32, wait_ms: u64, lease_ms: u64) -> ClaimRequest {
    ClaimRequest {
        worker: Some("test-worker".into()),
        max: Some(max),
        wait_ms: Some(wait_ms),
        lease_ms: Some(lease_ms),
        kinds: vec![],
        ..Default::default()
    }
}

/// Far below the server's 1 s claim recheck: a claim answered within this was woken, not
/// found by the recheck.
const WAKE_LATENCY: Duration = Duration::from_millis(300);

/// Makes `queue` known to the server (a queue exists once a job names it) and leaves it
/// empty.
async fn known_empty_queue(client: &Client, queue: &str) {
    client
        .enqueue(&EnqueueRequest {
            queue: Some(queue.into()),
            ..EnqueueRequest::new("warm-up")
        })
        .await
        .expect("enqueue");
    let c = client
        .claim(queue, &claim(1, 0, 30_000))
        .await
        .expect("claim")
        .jobs
        .remove(0);
    client
        .complete(
            c.id,
            &CompleteRequest {
                lease_token: c.lease_token,
                result: None,
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");
}

/// Waits until the server reports `n` claims parked on `queue`.
async fn parked(client: &Client, queue: &str, n: u32) {
    eventually(
        &format!("{n} claims parked on {queue}"),
        Duration::from_secs(10),
        || async {
            let q = client.queue(queue).await.expect("queue");
            (q.waiting_claims == n).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn waiting_claim_wakes_on_enqueue() {
    let s = server().await;
    let client = s.client().expect("client");
    known_empty_queue(&client, "wake").await;
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.claim("wake", &claim(1, 20_000, 30_000)).await })
    };
    parked(&client, "wake", 1).await;
    let enqueued = Instant::now();
    client
        .enqueue(&EnqueueRequest {
            queue: Some("wake".into()),
            ..EnqueueRequest::new("k")
        })
        .await
        .expect("enqueue");
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("claim returned long before its 20 s wait")
        .expect("join")
        .expect("claim");
    let latency = enqueued.elapsed();
    assert_eq!(got.jobs.len(), 1);
    assert!(
        latency < WAKE_LATENCY,
        "the enqueue woke the parked claim after {latency:?}"
    );
}

#[tokio::test]
async fn long_poll_disconnected_while_parked_takes_nothing() {
    let s = server().await;
    let client = s.client().expect("client");
    known_empty_queue(&client, "gone").await;
    let gone = {
        let client = client.clone();
        tokio::spawn(async move { client.claim("gone", &claim(1, 20_000, 60_000)).await })
    };
    parked(&client, "gone", 1).await;
    // Dropping the request closes its connection: the client is gone, and the server lets
    // go of its claim.
    gone.abort();
    let _ = gone.await;
    parked(&client, "gone", 0).await;
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some("gone".into()),
            ..EnqueueRequest::new("k")
        })
        .await
        .expect("enqueue");
    let next = tokio::time::timeout(
        Duration::from_secs(5),
        client.claim("gone", &claim(1, 5_000, 60_000)),
    )
    .await
    .expect("the next worker is answered promptly")
    .expect("claim");
    assert_eq!(next.jobs.len(), 1, "the job was not leased to nobody");
    assert_eq!(next.jobs[0].id, job.id);
    assert_eq!(next.jobs[0].attempt, 1, "the gone claim cost no attempt");
    let attempts = client.attempts(job.id).await.expect("attempts").attempts;
    assert_eq!(attempts.len(), 1);
}

#[tokio::test]
async fn expired_lease_fences_the_old_worker_over_http() {
    let s = server().await;
    let client = s.client().expect("client");
    let job = client
        .enqueue(&EnqueueRequest::new("k"))
        .await
        .expect("enqueue");
    let first = client
        .claim("default", &claim(1, 0, 200))
        .await
        .expect("claim")
        .jobs
        .remove(0);
    // The server's rescuer returns the job once the 200 ms lease runs out; a second worker
    // then gets it with a new token.
    let second = client
        .claim("default", &claim(1, 10_000, 30_000))
        .await
        .expect("claim")
        .jobs
        .remove(0);
    assert_eq!(second.id, job.id);
    assert_eq!(second.attempt, 2);
    let stale = client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: first.lease_token,
                result: None,
                report: None,
                session_state: None,
            },
        )
        .await
        .expect_err("stale token");
    assert_eq!(
        (stale.status(), stale.code()),
        (Some(409), Some("lease_lost"))
    );
    let hb = client
        .heartbeat(
            job.id,
            &HeartbeatRequest {
                lease_token: first.lease_token,
                lease_ms: None,
                progress: None,
                checkpoint: None,
            },
        )
        .await
        .expect_err("stale heartbeat");
    assert_eq!(hb.code(), Some("lease_lost"));
    let done = client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: second.lease_token,
                result: Some(json!(1)),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("current token");
    assert_eq!(done.state, JobState::Succeeded);
    let attempts = client.attempts(job.id).await.expect("attempts").attempts;
    assert_eq!(attempts.len(), 2);
}

#[tokio::test]
async fn settles_repeated_after_a_lost_answer_succeed() {
    let s = server().await;
    let client = s.client().expect("client");
    for _ in 0..2 {
        client
            .enqueue(&EnqueueRequest::new("k"))
            .await
            .expect("enqueue");
    }
    let got = client
        .claim("default", &claim(2, 0, 30_000))
        .await
        .expect("claim")
        .jobs;
    let complete = CompleteRequest {
        lease_token: got[0].lease_token,
        result: Some(json!({"sent": true})),
        report: None,
        session_state: None,
    };
    let first = client
        .complete(got[0].id, &complete)
        .await
        .expect("complete");
    let again = client
        .complete(got[0].id, &complete)
        .await
        .expect("the same complete by the same token is a success");
    assert_eq!(again, first);
    let fail = FailRequest {
        lease_token: got[1].lease_token,
        error: Some("smtp 451".into()),
        retry_in_ms: Some(60_000),
        dead: false,
        report: None,
    };
    let failed = client.fail(got[1].id, &fail).await.expect("fail");
    assert_eq!(failed.state, JobState::Scheduled);
    let again = client
        .fail(got[1].id, &fail)
        .await
        .expect("the same fail by the same token is a success");
    assert_eq!(again, failed);
    let crossed = client
        .complete(
            got[1].id,
            &CompleteRequest {
                lease_token: got[1].lease_token,
                result: None,
                report: None,
                session_state: None,
            },
        )
        .await
        .expect_err("a complete after that token failed the attempt");
    assert_eq!(crossed.code(), Some("lease_lost"));
    let attempts = client.attempts(got[1].id).await.expect("attempts").attempts;
    assert_eq!(attempts.len(), 1);
}

#[tokio::test]
async fn heartbeat_progress_checkpoint_and_retry_resume() {
    let s = server().await;
    let client = s.client().expect("client");
    let job = client
        .enqueue(&EnqueueRequest::new("long"))
        .await
        .expect("enqueue");
    let c = client
        .claim("default", &claim(1, 0, 5_000))
        .await
        .expect("claim")
        .jobs
        .remove(0);
    let hb = client
        .heartbeat(
            job.id,
            &HeartbeatRequest {
                lease_token: c.lease_token,
                lease_ms: Some(60_000),
                progress: Some(Progress {
                    percent: Some(50.0),
                    message: Some("half".into()),
                }),
                checkpoint: Some(json!({"row": 500})),
            },
        )
        .await
        .expect("heartbeat");
    assert_eq!(hb.state, JobState::Running);
    let seen = client.job(job.id, None).await.expect("job");
    assert_eq!(seen.progress.and_then(|p| p.message), Some("half".into()));
    let failed = client
        .fail(
            job.id,
            &FailRequest {
                lease_token: c.lease_token,
                error: Some("disk full".into()),
                retry_in_ms: Some(0),
                dead: false,
                report: None,
            },
        )
        .await
        .expect("fail");
    assert_eq!(failed.state, JobState::Available);
    let again = client
        .claim("default", &claim(1, 0, 5_000))
        .await
        .expect("claim")
        .jobs
        .remove(0);
    assert_eq!(
        again.checkpoint,
        Some(json!({"row": 500})),
        "a retry starts from the checkpoint"
    );
    assert_eq!(again.attempt, 2);
}

#[tokio::test]
async fn settle_many_and_dead_letter_round_trip() {
    let s = server().await;
    let client = s.client().expect("client");
    for _ in 0..4 {
        client
            .enqueue(&EnqueueRequest {
                queue: Some("batch".into()),
                ..EnqueueRequest::new("k")
            })
            .await
            .expect("enqueue");
    }
    let got = client
        .claim("batch", &claim(10, 0, 30_000))
        .await
        .expect("claim")
        .jobs;
    assert_eq!(got.len(), 4);
    let out = client
        .settle(&SettleRequest {
            completions: got[..2]
                .iter()
                .map(|j| SettleCompletion {
                    id: j.id,
                    lease_token: j.lease_token,
                    result: None,
                    report: None,
                    session_state: None,
                })
                .collect(),
            failures: vec![
                SettleFailure {
                    id: got[2].id,
                    lease_token: got[2].lease_token,
                    error: Some("bad".into()),
                    retry_in_ms: None,
                    dead: true,
                    report: None,
                },
                SettleFailure {
                    id: got[3].id,
                    lease_token: errand_core::LeaseToken::new(),
                    error: None,
                    retry_in_ms: None,
                    dead: true,
                    report: None,
                },
            ],
        })
        .await
        .expect("settle");
    let states: Vec<_> = out.results.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        vec![
            Some(JobState::Succeeded),
            Some(JobState::Succeeded),
            Some(JobState::Dead),
            None
        ]
    );
    let refused = out.results[3]
        .error
        .as_ref()
        .expect("a forged token is refused");
    assert_eq!(refused.code, "lease_lost");
    let settled = client
        .fail(
            got[3].id,
            &FailRequest {
                lease_token: got[3].lease_token,
                error: None,
                retry_in_ms: None,
                dead: true,
                report: None,
            },
        )
        .await
        .expect("the real token still holds the job");
    assert_eq!(settled.state, JobState::Dead);
    let dead = client
        .dead(&JobListQuery {
            queue: Some("batch".into()),
            ..Default::default()
        })
        .await
        .expect("dead list");
    assert_eq!(dead.jobs.len(), 2);
    let refused = client
        .dead_purge(&DeadSelectionRequest::default())
        .await
        .expect_err("no selection");
    assert_eq!(refused.status(), Some(400));
    let n = client
        .dead_requeue(&DeadSelectionRequest {
            ids: vec![got[2].id],
            ..Default::default()
        })
        .await
        .expect("requeue");
    assert_eq!(n.count, 1);
    let n = client
        .dead_purge(&DeadSelectionRequest {
            queue: Some("batch".into()),
            ..Default::default()
        })
        .await
        .expect("purge");
    assert_eq!(n.count, 1);
    let q = client.queue("batch").await.expect("queue");
    assert_eq!(
        (q.counts.available, q.counts.dead, q.counts.succeeded),
        (1, 0, 2)
    );
}

#[tokio::test]
async fn paused_queue_hands_out_nothing_until_resumed() {
    let s = server().await;
    let client = s.client().expect("client");
    client
        .enqueue(&EnqueueRequest {
            queue: Some("p".into()),
            ..EnqueueRequest::new("k")
        })
        .await
        .expect("enqueue");
    assert!(client.set_paused("p", true).await.expect("pause").paused);
    assert!(client
        .claim("p", &claim(1, 0, 30_000))
        .await
        .expect("claim")
        .jobs
        .is_empty());
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.claim("p", &claim(1, 20_000, 30_000)).await })
    };
    parked(&client, "p", 1).await;
    let resumed = Instant::now();
    client.set_paused("p", false).await.expect("resume");
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("resume wakes the waiting claim")
        .expect("join")
        .expect("claim");
    let latency = resumed.elapsed();
    assert_eq!(got.jobs.len(), 1);
    assert!(
        latency < WAKE_LATENCY,
        "the resume woke the parked claim after {latency:?}"
    );
    let unknown = client
        .set_paused("never-used", true)
        .await
        .expect_err("unknown queue");
    assert_eq!(unknown.status(), Some(404));
}

#[tokio::test]
async fn a_released_job_is_available_uncounted_and_wakes_a_waiting_claim() {
    let s = server().await;
    let client = s.client().expect("client");
    // One attempt only: a release that counted the attempt (as a failure does) would make
    // the job dead.
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some("give-back".into()),
            max_attempts: Some(1),
            ..EnqueueRequest::new("k")
        })
        .await
        .expect("enqueue");
    let held = client
        .claim("give-back", &claim(1, 0, 30_000))
        .await
        .expect("claim")
        .jobs
        .remove(0);
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.claim("give-back", &claim(1, 20_000, 30_000)).await })
    };
    parked(&client, "give-back", 1).await;
    let released_at = Instant::now();
    let back = client
        .release(
            job.id,
            &ReleaseRequest {
                lease_token: held.lease_token,
            },
        )
        .await
        .expect("release");
    assert_eq!((back.state, back.attempt), (JobState::Available, 0));
    let again = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("claim returned long before its 20 s wait")
        .expect("join")
        .expect("claim")
        .jobs
        .remove(0);
    let latency = released_at.elapsed();
    assert!(
        latency < WAKE_LATENCY,
        "the release woke the parked claim after {latency:?}"
    );
    assert_eq!((again.id, again.attempt), (job.id, 1));
    assert!(
        client
            .attempts(job.id)
            .await
            .expect("attempts")
            .attempts
            .len()
            == 1,
        "the given-back attempt is forgotten; only the new one is recorded"
    );
    // The old token no longer holds the job: a second release is fenced off.
    let stale = client
        .release(
            job.id,
            &ReleaseRequest {
                lease_token: held.lease_token,
            },
        )
        .await
        .expect_err("stale token");
    assert_eq!(
        (stale.status(), stale.code()),
        (Some(409), Some("lease_lost"))
    );
    let missing = client
        .release(
            errand_core::JobId::new(),
            &ReleaseRequest {
                lease_token: held.lease_token,
            },
        )
        .await
        .expect_err("no such job");
    assert_eq!(missing.status(), Some(404));
}

fn done(j: &errand_api::ClaimedJobView) -> SettleCompletion {
    SettleCompletion {
        id: j.id,
        lease_token: j.lease_token,
        result: Some(json!({"n": 1})),
        report: None,
        session_state: None,
    }
}

/// A worker's cycle in one request: the claim carries the settlements of what it
/// finished, answers each, and hands out the next jobs; a bad settlement refuses the whole
/// request and changes nothing; settlements are kept even when the claim then waits and
/// finds nothing.
#[tokio::test]
async fn a_claim_settles_what_the_worker_finished_in_the_same_request() {
    let s = server().await;
    let client = s.client().expect("client");
    for _ in 0..3 {
        client
            .enqueue(&EnqueueRequest {
                queue: Some("cycle".into()),
                ..EnqueueRequest::new("k")
            })
            .await
            .expect("enqueue");
    }
    let first = client
        .claim("cycle", &claim(2, 0, 30_000))
        .await
        .expect("claim")
        .jobs;
    assert_eq!(first.len(), 2);
    assert!(
        client
            .claim("cycle", &claim(1, 0, 30_000))
            .await
            .expect("plain claim")
            .settled
            .is_empty(),
        "a claim without settlements answers none"
    );

    // A NUL in a failure's reason refuses the whole request: nothing settled, nothing claimed.
    let bad = client
        .claim(
            "cycle",
            &ClaimRequest {
                completions: vec![done(&first[0])],
                failures: vec![SettleFailure {
                    id: first[1].id,
                    lease_token: first[1].lease_token,
                    error: Some("nul \u{0} here".into()),
                    retry_in_ms: None,
                    dead: false,
                    report: None,
                }],
                ..claim(5, 0, 30_000)
            },
        )
        .await
        .expect_err("a bad settlement refuses the request");
    assert_eq!(bad.status(), Some(400));
    let q = client.queue("cycle").await.expect("queue");
    assert_eq!((q.counts.running, q.counts.succeeded), (3, 0));

    let forged = SettleCompletion {
        lease_token: errand_core::LeaseToken::new(),
        ..done(&first[1])
    };
    // Nothing is ready (the third job is held by the plain claim): the claim waits, with
    // its settlements already kept, until a job comes.
    let waiting = {
        let client = client.clone();
        let first = first.clone();
        tokio::spawn(async move {
            client
                .claim(
                    "cycle",
                    &ClaimRequest {
                        completions: vec![done(&first[0]), forged],
                        failures: vec![SettleFailure {
                            id: first[1].id,
                            lease_token: first[1].lease_token,
                            error: Some("boom".into()),
                            retry_in_ms: None,
                            dead: true,
                            report: None,
                        }],
                        ..claim(5, 30_000, 30_000)
                    },
                )
                .await
        })
    };
    eventually(
        "the settlements are kept while the claim waits",
        Duration::from_secs(10),
        || async {
            let job = client.job(first[1].id, None).await.expect("job");
            (job.state == JobState::Dead).then_some(())
        },
    )
    .await;
    parked(&client, "cycle", 1).await;
    assert!(!waiting.is_finished(), "the claim still waits");
    let next = client
        .enqueue(&EnqueueRequest {
            queue: Some("cycle".into()),
            ..EnqueueRequest::new("k")
        })
        .await
        .expect("enqueue");
    let cycle = waiting.await.expect("task").expect("settle and claim");
    let states: Vec<_> = cycle.settled.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        vec![Some(JobState::Succeeded), None, Some(JobState::Dead)],
        "completions first, then failures, in request order"
    );
    assert_eq!(
        cycle.settled[1].error.as_ref().map(|e| e.code.as_str()),
        Some("lease_lost")
    );
    assert_eq!(
        cycle.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![next.id],
        "the waiting claim took the job that came"
    );
    let kept = client.job(first[0].id, None).await.expect("job");
    assert_eq!(kept.state, JobState::Succeeded);
    assert_eq!(kept.result, Some(json!({"n": 1})));
    assert_eq!(
        client.job(first[1].id, None).await.expect("job").state,
        JobState::Dead
    );
}
