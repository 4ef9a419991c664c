//! Crash safety with real processes: `kill -9` the server and check that nothing it
//! acknowledged was lost.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use errand_api::{ClaimRequest, EnqueueRequest, JobListQuery, SettleRequest};
use errand_client::Client;
use errand_core::{JobId, JobState};
use errand_testkit::{eventually, ServerProcess};
use tokio::sync::Mutex;

use common::bin;

async fn all_job_ids(client: &Client) -> HashSet<JobId> {
    let mut ids = HashSet::new();
    let mut cursor = None;
    loop {
        let page = client
            .jobs(&JobListQuery {
                limit: Some(1000),
                cursor,
                ..Default::default()
            })
            .await
            .expect("list");
        ids.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_enqueues_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start_in(&bin(), dir.path(), &[])
        .await
        .expect("start");
    let client = server.client().expect("client");
    let acked = Arc::new(Mutex::new(Vec::with_capacity(10_000)));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                {
                    if acked.lock().await.len() >= 10_000 {
                        return;
                    }
                }
                let job = client
                    .enqueue(&EnqueueRequest::new("durable"))
                    .await
                    .expect("enqueue");
                acked.lock().await.push(job.id);
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    server.kill9().await;
    let acked: Vec<JobId> = acked.lock().await.clone();
    assert!(acked.len() >= 10_000);
    server
        .restart()
        .await
        .expect("restart on the same data directory");
    let stored = all_job_ids(&server.client().expect("client")).await;
    let lost: Vec<&JobId> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged jobs lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
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
