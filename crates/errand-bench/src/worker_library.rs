//! The Rust worker library (`errand-worker`) against raw HTTP workers: `jobs` no-op jobs
//! are enqueued in batches first, then drained, timed from the first claim to the last
//! success, once by raw claim/settle loops (8 workers claiming up to 500) and once by one
//! `errand-worker` `Worker` at concurrency 16 with a no-op handler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_api::{BatchEnqueueRequest, ClaimRequest, EnqueueRequest, SettleRequest};
use errand_client::{Client, HttpJobHost, JobType};
use errand_worker::{CancellationToken, JobContext, JobError, Worker};

use super::stats::Figures;

/// The queue of this scenario.
pub const QUEUE: &str = "lib";
/// Raw workers and their claim size (as in the end-to-end scenario).
const RAW_WORKERS: usize = 8;
const RAW_CLAIM: u32 = 500;
/// The library worker's concurrency.
pub const CONCURRENCY: usize = 16;

/// The no-op job.
#[derive(serde::Serialize, serde::Deserialize)]
struct Noop {}

impl JobType for Noop {
    const KIND: &'static str = "noop";
}

async fn noop(_ctx: JobContext, _job: Noop) -> Result<(), JobError> {
    Ok(())
}

/// Enqueues `jobs` no-op jobs to `queue` in batches of 1,000, four batches in flight.
pub async fn fill(client: &Client, queue: &str, jobs: usize) -> anyhow::Result<()> {
    const BATCH: usize = 1000;
    const IN_FLIGHT: usize = 4;
    let mut left = jobs;
    while left > 0 {
        let mut sends = Vec::with_capacity(IN_FLIGHT);
        while sends.len() < IN_FLIGHT && left > 0 {
            let n = left.min(BATCH);
            left -= n;
            let req = BatchEnqueueRequest {
                jobs: (0..n)
                    .map(|_| EnqueueRequest {
                        queue: Some(queue.into()),
                        ..EnqueueRequest::new(Noop::KIND)
                    })
                    .collect(),
            };
            sends.push(async move { client.enqueue_batch(&req).await });
        }
        for r in futures_util::future::join_all(sends).await {
            r?;
        }
    }
    Ok(())
}

/// Drains the queue with raw claim/settle loops.
pub async fn raw(client: &Client, jobs: usize) -> anyhow::Result<Figures> {
    let done = Arc::new(AtomicU64::new(0));
    let target = jobs as u64;
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..RAW_WORKERS {
        let c = client.clone();
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let claim = ClaimRequest {
                worker: Some(format!("raw-{w}")),
                max: Some(RAW_CLAIM),
                wait_ms: Some(200),
                lease_ms: Some(60_000),
                kinds: vec![],
                ..Default::default()
            };
            while done.load(Ordering::Relaxed) < target {
                let got = c.claim(QUEUE, &claim).await?;
                if got.jobs.is_empty() {
                    continue;
                }
                let out = c.settle(&SettleRequest::complete_all(&got.jobs)).await?;
                let ok = out.results.iter().filter(|r| r.error.is_none()).count() as u64;
                done.fetch_add(ok, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(Figures {
        jobs: done.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        latency: None,
        cpu: Default::default(),
    })
}

/// Drains the queue with one library worker at concurrency 16.
pub async fn library(client: &Client, jobs: usize) -> anyhow::Result<Figures> {
    let host = HttpJobHost::new(client.clone(), "bench-lib", Duration::from_secs(60));
    let stop = CancellationToken::new();
    let start = Instant::now();
    let worker = Worker::new(Arc::new(host))
        .queue(QUEUE)
        .concurrency(CONCURRENCY)
        .poll_wait(Duration::from_millis(200))
        .register::<Noop, _>(noop);
    let running = tokio::spawn(worker.run_until(stop.clone()));
    let target = jobs as u64;
    let done = loop {
        let succeeded = client.queue(QUEUE).await?.counts.succeeded;
        if succeeded >= target {
            break succeeded;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = start.elapsed();
    stop.cancel();
    running.await??;
    Ok(Figures {
        jobs: done,
        elapsed,
        latency: None,
        cpu: Default::default(),
    })
}
