//! Enqueue throughput: single jobs from N clients, and batches.

use std::time::{Duration, Instant};

use errand_api::{BatchEnqueueRequest, EnqueueRequest};
use errand_client::Client;

use super::stats::{histogram, Figures};

fn noop() -> EnqueueRequest {
    EnqueueRequest {
        queue: Some("bench".into()),
        payload: Some(serde_json::json!({"n": 1})),
        ..EnqueueRequest::new("noop")
    }
}

/// `clients` concurrent loops each enqueueing one job per request for `duration`.
pub async fn single(
    client: &Client,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let req = noop();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                c.enqueue(&req).await?;
                h.saturating_record(t.elapsed().as_micros() as u64);
                n += 1;
            }
            anyhow::Ok((n, h))
        }));
    }
    let mut total = histogram();
    let mut jobs = 0;
    for t in tasks {
        let (n, h) = t.await??;
        jobs += n;
        total.add(h)?;
    }
    Ok(Figures {
        jobs,
        elapsed: start.elapsed(),
        latency: Some(total),
    })
}

/// `clients` concurrent loops each enqueueing batches of `size` for `duration`.
pub async fn batched(
    client: &Client,
    size: usize,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let req = BatchEnqueueRequest {
                jobs: (0..size).map(|_| noop()).collect(),
            };
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let out = c.enqueue_batch(&req).await?;
                h.saturating_record(t.elapsed().as_micros() as u64);
                n += out.inserted as u64;
            }
            anyhow::Ok((n, h))
        }));
    }
    let mut total = histogram();
    let mut jobs = 0;
    for t in tasks {
        let (n, h) = t.await??;
        jobs += n;
        total.add(h)?;
    }
    Ok(Figures {
        jobs,
        elapsed: start.elapsed(),
        latency: Some(total),
    })
}
