//! End-to-end: producers enqueue in batches while HTTP workers claim in batches and settle
//! each batch in one call. Throughput is jobs completed over the time until the last one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use errand_api::{BatchEnqueueRequest, ClaimRequest, EnqueueRequest, SettleRequest};
use errand_client::Client;

use super::stats::Figures;

/// Workers polling the queue; enough to keep the server busy on two cores.
const WORKERS: usize = 8;
/// Jobs per claim and per settle call.
const CLAIM_BATCH: u32 = 500;
/// Jobs per enqueue call.
const ENQUEUE_BATCH: usize = 1000;

/// Makes the `i`th job of a run.
pub type MakeJob = Arc<dyn Fn(usize) -> EnqueueRequest + Send + Sync>;

/// Runs `jobs` no-op jobs through the servers: one producer on the first node, workers
/// spread over all of them.
pub async fn run(nodes: &[Client], jobs: usize) -> anyhow::Result<Figures> {
    let make: MakeJob = Arc::new(|_| EnqueueRequest {
        queue: Some("e2e".into()),
        ..EnqueueRequest::new("noop")
    });
    run_jobs(nodes, "e2e", jobs, make).await
}

/// Runs `jobs` jobs made by `make` (all of queue `queue`) through the servers, the same
/// way as [`run`].
pub async fn run_jobs(
    nodes: &[Client],
    queue: &str,
    jobs: usize,
    make: MakeJob,
) -> anyhow::Result<Figures> {
    let client = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    let done = Arc::new(AtomicU64::new(0));
    let target = jobs as u64;
    let start = Instant::now();
    let producer = {
        let c = client.clone();
        tokio::spawn(async move {
            let mut next = 0;
            while next < jobs {
                let n = (jobs - next).min(ENQUEUE_BATCH);
                let req = BatchEnqueueRequest {
                    jobs: (next..next + n).map(|i| make(i)).collect(),
                };
                c.enqueue_batch(&req).await?;
                next += n;
            }
            anyhow::Ok(())
        })
    };
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        // Workers spread over the nodes; on several nodes their wake-ups cross nodes.
        let c = nodes[w % nodes.len()].clone();
        let done = done.clone();
        let queue = queue.to_string();
        workers.push(tokio::spawn(async move {
            let claim = ClaimRequest {
                worker: Some(format!("bench-{w}")),
                max: Some(CLAIM_BATCH),
                wait_ms: Some(200),
                lease_ms: Some(60_000),
                kinds: vec![],
                ..Default::default()
            };
            while done.load(Ordering::Relaxed) < target {
                let got = c.claim(&queue, &claim).await?;
                if got.jobs.is_empty() {
                    continue;
                }
                let settle = SettleRequest::complete_all(&got.jobs);
                let out = c.settle(&settle).await?;
                let ok = out.results.iter().filter(|r| r.error.is_none()).count() as u64;
                done.fetch_add(ok, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    producer.await??;
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
