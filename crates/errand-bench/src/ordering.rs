//! Conflicts and ordering (issue 11): end-to-end throughput of jobs under 1,000 lock keys,
//! 10-job sessions, a queue rate limit above the load and 100 fairness keys, each against
//! a plain run on a fresh server in the same invocation; and the latency of a claim on a
//! queue where a million jobs wait parked behind one lock key or in sessions.

use std::sync::Arc;
use std::time::Instant;

use errand_api::{BatchEnqueueRequest, ClaimRequest, EnqueueRequest, SettleRequest};
use errand_client::Client;
use errand_core::queue::QueueSettingsPatch;
use errand_core::throttle::RateLimit;
use hyper::body::Bytes;

use super::end_to_end::{run_jobs, MakeJob};
use super::raw_http::RawConnection;
use super::stats::{histogram, Figures};

/// The queue every part uses (each part runs on its own fresh server).
const QUEUE: &str = "ordered";
/// Distinct lock keys in the lock part.
const LOCK_KEYS: usize = 1000;
/// Jobs per session in the session part.
const SESSION_LENGTH: usize = 10;
/// Tenants in the fairness part.
const TENANTS: usize = 100;
/// Sessions holding the parked jobs in the parked-sessions part.
const PARKED_SESSIONS: usize = 1000;
/// Ready jobs kept in the queue while claim latency is measured.
const READY: usize = 5;
/// Claims timed in a parked part.
const TIMED_CLAIMS: usize = 2000;

/// One throughput part: its name and how it makes the `i`th job.
pub struct Part {
    /// Printed name.
    pub name: String,
    /// The job factory.
    pub make: MakeJob,
    /// Whether the queue gets a rate limit above the load first.
    pub rate_limited: bool,
}

fn job() -> EnqueueRequest {
    EnqueueRequest {
        queue: Some(QUEUE.into()),
        ..EnqueueRequest::new("noop")
    }
}

/// What marks the ready jobs of a parked part.
fn ready_payload() -> serde_json::Value {
    serde_json::json!({"ready": true})
}

/// A ready job of a parked part.
fn ready_job() -> EnqueueRequest {
    EnqueueRequest {
        payload: Some(ready_payload()),
        ..job()
    }
}

/// The plain run each part is compared with.
pub fn unrestricted() -> Part {
    Part {
        name: "ordering: unrestricted".into(),
        make: Arc::new(|_| job()),
        rate_limited: false,
    }
}

/// The restricted parts; `jobs` sizes the session count.
pub fn parts(jobs: usize) -> Vec<Part> {
    let sessions = (jobs / SESSION_LENGTH).max(1);
    vec![
        Part {
            name: format!("ordering: {LOCK_KEYS} lock keys"),
            make: Arc::new(|i| EnqueueRequest {
                lock_key: Some(format!("lock-{}", i % LOCK_KEYS)),
                ..job()
            }),
            rate_limited: false,
        },
        Part {
            name: format!("ordering: {sessions} sessions of {SESSION_LENGTH}"),
            make: Arc::new(move |i| EnqueueRequest {
                session_key: Some(format!("session-{}", i % sessions)),
                ..job()
            }),
            rate_limited: false,
        },
        Part {
            name: "ordering: queue rate 1M/s (above load)".into(),
            make: Arc::new(|_| job()),
            rate_limited: true,
        },
        Part {
            name: format!("ordering: {TENANTS} fairness keys"),
            make: Arc::new(|i| EnqueueRequest {
                fairness_key: Some(format!("tenant-{}", i % TENANTS)),
                ..job()
            }),
            rate_limited: false,
        },
    ]
}

/// `PATCH /v1/queues/{queue}` with `patch`.
async fn patch_queue(
    client: &Client,
    queue: &str,
    patch: &QueueSettingsPatch,
) -> anyhow::Result<()> {
    let mut conn = RawConnection::connect(client.base_url()).await?;
    let status = conn
        .send(
            hyper::Method::PATCH,
            &format!("/v1/queues/{queue}"),
            Bytes::from(serde_json::to_vec(patch)?),
        )
        .await?;
    anyhow::ensure!(status == 200, "PATCH /v1/queues/{queue} answered {status}");
    Ok(())
}

/// Runs one throughput part on `nodes`.
pub async fn run_part(nodes: &[Client], part: &Part, jobs: usize) -> anyhow::Result<Figures> {
    let client = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    if part.rate_limited {
        let patch = QueueSettingsPatch {
            rate: Some(Some(RateLimit {
                limit: 1_000_000,
                period_ms: 1000,
                burst: None,
            })),
            ..QueueSettingsPatch::default()
        };
        patch_queue(client, QUEUE, &patch).await?;
    }
    run_jobs(nodes, QUEUE, jobs, part.make.clone()).await
}

/// How the parked jobs wait.
#[derive(Debug, Clone, Copy)]
pub enum Parked {
    /// All behind one lock key whose first job runs.
    OneLock,
    /// In [`PARKED_SESSIONS`] sessions whose heads run.
    Sessions,
}

/// Enqueues `parked` jobs that will wait parked (plus the ones that hold their places),
/// has the holders claimed, and returns the time the enqueue took.
async fn park(client: &Client, parked: usize, how: Parked) -> anyhow::Result<std::time::Duration> {
    let holders = match how {
        Parked::OneLock => 1,
        Parked::Sessions => PARKED_SESSIONS,
    };
    let total = parked + holders;
    let start = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    const PRODUCERS: usize = 4;
    for p in 0..PRODUCERS {
        let c = client.clone();
        producers.spawn(async move {
            let mut i = p * 1000;
            while i < total {
                let n = (total - i).min(1000);
                let req = BatchEnqueueRequest {
                    jobs: (i..i + n)
                        .map(|j| match how {
                            Parked::OneLock => EnqueueRequest {
                                lock_key: Some("the-one".into()),
                                ..job()
                            },
                            Parked::Sessions => EnqueueRequest {
                                session_key: Some(format!("parked-{}", j % PARKED_SESSIONS)),
                                ..job()
                            },
                        })
                        .collect(),
                };
                c.enqueue_batch(&req).await?;
                i += PRODUCERS * 1000;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = producers.join_next().await {
        r??;
    }
    let took = start.elapsed();
    let hold = ClaimRequest {
        worker: Some("holder".into()),
        max: Some(500),
        wait_ms: Some(0),
        lease_ms: Some(600_000),
        kinds: vec![],
        ..Default::default()
    };
    let mut held = 0;
    while held < holders {
        let got = client.claim(QUEUE, &hold).await?;
        anyhow::ensure!(
            !got.jobs.is_empty(),
            "only {held} of {holders} holders claimed"
        );
        held += got.jobs.len();
    }
    anyhow::ensure!(
        held == holders,
        "{held} claimed, {holders} expected: parked jobs ran"
    );
    Ok(took)
}

/// Fills the queue with `parked` parked jobs and a few ready ones.
pub async fn prepare_parked(nodes: &[Client], parked: usize, how: Parked) -> anyhow::Result<()> {
    let client = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    let took = park(client, parked, how).await?;
    println!(
        "  {parked} parked jobs ({how:?}) enqueued in {:.1}s ({:.0} jobs/s)",
        took.as_secs_f64(),
        parked as f64 / took.as_secs_f64().max(1e-9)
    );
    let ready = BatchEnqueueRequest {
        jobs: (0..READY).map(|_| ready_job()).collect(),
    };
    client.enqueue_batch(&ready).await?;
    Ok(())
}

/// Claim latency on the queue [`prepare_parked`] filled: each timed claim takes one ready
/// job (never a parked one), which is then completed and replaced.
pub async fn timed_claims(nodes: &[Client]) -> anyhow::Result<Figures> {
    let client = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    let claim = ClaimRequest {
        worker: Some("timed".into()),
        max: Some(1),
        wait_ms: Some(0),
        lease_ms: Some(60_000),
        kinds: vec![],
        ..Default::default()
    };
    let mut h = histogram();
    let start = Instant::now();
    for _ in 0..TIMED_CLAIMS {
        let t = Instant::now();
        let got = client.claim(QUEUE, &claim).await?;
        h.saturating_record(t.elapsed().as_micros() as u64);
        anyhow::ensure!(got.jobs.len() == 1, "a ready job was not claimed");
        anyhow::ensure!(
            got.jobs.iter().all(|c| c.payload == ready_payload()),
            "a parked job was claimed"
        );
        client
            .settle(&SettleRequest::complete_all(&got.jobs))
            .await?;
        client.enqueue(&ready_job()).await?;
    }
    Ok(Figures {
        jobs: TIMED_CLAIMS as u64,
        elapsed: start.elapsed(),
        latency: Some(h),
        cpu: Default::default(),
    })
}
