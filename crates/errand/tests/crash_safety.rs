//! Crash safety with real processes: `kill -9` the server while it works and check that
//! nothing it acknowledged was lost.
//!
//! What this proves and what it does not: a killed process loses its memory but not the
//! operating system's page cache, so these tests show that errand answers 2xx only after
//! SQLite committed, and that the file is consistent after a crash at any moment. They do
//! not show that a commit reached the disk (that `fsync` works): only a machine crash or
//! a fault-injecting layer could. For that the tests check the settings that make SQLite
//! sync on every commit (WAL, `synchronous=FULL`) are the ones in force.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use errand_api::{ClaimRequest, EnqueueRequest, JobListQuery, SettleRequest};
use errand_client::Client;
use errand_core::{JobId, JobState};
use errand_testkit::{eventually, ServerProcess};
use tokio::sync::Mutex;

use common::bin;

async fn all_job_ids(client: &Client) -> HashSet<JobId> {
    common::all_jobs(client, JobListQuery::default())
        .await
        .into_iter()
        .map(|j| j.id)
        .collect()
}

/// The settings `README.md` and `docs/operations.md` promise, as the running server reports
/// them: SQLite read them back from the connection that commits.
const DOCUMENTED_DURABILITY: &str = "journal_mode=wal synchronous=full";

fn assert_documented_durability(server: &ServerProcess) {
    let lines = server.stdout_lines();
    let store_line = lines
        .iter()
        .find(|l| l.contains("store: sqlite"))
        .unwrap_or_else(|| panic!("the server did not say which store it opened: {lines:?}"));
    assert!(
        store_line.contains(DOCUMENTED_DURABILITY),
        "the store does not run with {DOCUMENTED_DURABILITY}: {store_line}"
    );
}

/// Concurrent producers: enough that, while one group commits, the next group is already
/// queued at the writer.
const PRODUCERS: usize = 96;

/// Kills and restarts this often in one test: each kill lands at another point of the
/// group-commit cycle.
const ROUNDS: usize = 4;

/// Runs the producers against `server` until the load is in full flight, kills the server
/// with `kill -9`, and returns the ids it acknowledged.
async fn load_then_kill_9(server: &mut ServerProcess) -> Vec<JobId> {
    let client = server.client().expect("client");
    let acked = Arc::new(Mutex::new(Vec::with_capacity(4_000)));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let cut_off = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let client = client.clone();
        let acked = acked.clone();
        let in_flight = in_flight.clone();
        let cut_off = cut_off.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                in_flight.fetch_add(1, Ordering::SeqCst);
                let outcome = client.enqueue(&EnqueueRequest::new("durable")).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                match outcome {
                    Ok(job) => acked.lock().await.push(job.id),
                    // Only the kill ends a producer: its request was cut off unanswered.
                    Err(_) => {
                        cut_off.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }));
    }
    // Kill in full flight: many acknowledged and most producers waiting on a commit.
    let waiting = eventually(
        "the load is in full flight",
        Duration::from_secs(120),
        || {
            let acked = acked.clone();
            let in_flight = in_flight.clone();
            async move {
                let waiting = in_flight.load(Ordering::SeqCst);
                (acked.lock().await.len() >= 1_500 && waiting >= PRODUCERS / 2).then_some(waiting)
            }
        },
    )
    .await;
    server.kill9().await;
    for t in tasks {
        t.await.expect("join");
    }
    assert!(
        cut_off.load(Ordering::SeqCst) > 0,
        "no request was in flight when the server died ({waiting} were just before)"
    );
    let acked = acked.lock().await.clone();
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_enqueues_survive_kill_9_mid_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start_in(&bin(), dir.path(), &[])
        .await
        .expect("start");
    assert_documented_durability(&server);
    let mut acked = Vec::new();
    for round in 1..=ROUNDS {
        acked.extend(load_then_kill_9(&mut server).await);
        server
            .restart()
            .await
            .expect("restart on the same data directory");
        assert_documented_durability(&server);
        let stored = all_job_ids(&server.client().expect("client")).await;
        let lost: Vec<&JobId> = acked.iter().filter(|id| !stored.contains(id)).collect();
        assert!(
            lost.is_empty(),
            "after kill {round}: {} of {} acknowledged jobs lost, e.g. {:?}",
            lost.len(),
            acked.len(),
            lost.first()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_jobs_run_again_after_kill_9_and_all_complete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start_in(&bin(), dir.path(), &[])
        .await
        .expect("start");
    let client = server.client().expect("client");
    let mut ids = HashSet::new();
    for _ in 0..200 {
        ids.insert(
            client
                .enqueue(&EnqueueRequest::new("work"))
                .await
                .expect("enqueue")
                .id,
        );
    }
    let leased = client
        .claim(
            "default",
            &ClaimRequest {
                worker: Some("doomed".into()),
                max: Some(100),
                lease_ms: Some(1000),
                ..Default::default()
            },
        )
        .await
        .expect("claim")
        .jobs;
    assert_eq!(leased.len(), 100);
    server.kill9().await;
    server.restart().await.expect("restart");
    let client = server.client().expect("client");
    let mut completed = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while completed.len() < ids.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 200 completed",
            completed.len()
        );
        let got = client
            .claim(
                "default",
                &ClaimRequest {
                    worker: Some("survivor".into()),
                    max: Some(50),
                    wait_ms: Some(2000),
                    lease_ms: Some(30_000),
                    ..Default::default()
                },
            )
            .await
            .expect("claim")
            .jobs;
        if got.is_empty() {
            continue;
        }
        let out = client
            .settle(&SettleRequest::complete_all(&got))
            .await
            .expect("settle");
        for (job, r) in got.iter().zip(&out.results) {
            assert!(r.error.is_none(), "settle failed: {:?}", r.error);
            assert!(completed.insert(job.id), "job {} completed twice", job.id);
        }
    }
    assert_eq!(completed, ids);
    for j in &leased {
        let job = client.job(j.id, None).await.expect("job");
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.attempt, 2, "the lost lease counted as an attempt");
    }
    let q = eventually("queue counts settle", Duration::from_secs(5), || async {
        let q = client.queue("default").await.ok()?;
        (q.counts.succeeded == 200).then_some(q)
    })
    .await;
    assert_eq!(q.counts.running + q.counts.available, 0);
}
