//! Enqueue throughput: single jobs from N clients, and batches.

use std::future::Future;
use std::time::{Duration, Instant};

use errand_api::{BatchEnqueueRequest, EnqueueRequest};
use errand_client::Client;
use hyper::body::Bytes;

use super::raw_http::RawConnection;
use super::stats::{histogram, Figures};

fn noop() -> EnqueueRequest {
    EnqueueRequest {
        queue: Some("bench".into()),
        payload: Some(serde_json::json!({"n": 1})),
        ..EnqueueRequest::new("noop")
    }
}

/// Runs one loop per client for `duration`; each step takes the client, sends one request
/// and gives the client back with how many jobs it stored. Collects the count and the
/// latency of every step.
pub(crate) async fn drive<C, F, Fut>(
    clients: Vec<C>,
    duration: Duration,
    step: F,
) -> anyhow::Result<Figures>
where
    C: Send + 'static,
    F: Fn(C) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<(C, u64)>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for c in clients {
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut n = 0u64;
            let mut c = c;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (back, stored) = step(c).await?;
                c = back;
                n += stored;
                h.saturating_record(t.elapsed().as_micros() as u64);
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
        cpu: Default::default(),
    })
}

/// `clients` concurrent loops, each on its own connection, enqueueing one job per request.
/// Every answer must be `201`.
pub async fn single(
    nodes: &[Client],
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let body = Bytes::from(serde_json::to_vec(&noop())?);
    let conns = RawConnection::spread(nodes, clients).await?;
    drive(conns, duration, move |mut conn: RawConnection| {
        let body = body.clone();
        async move {
            let status = conn.post("/v1/jobs", body).await?;
            anyhow::ensure!(status == 201, "enqueue answered {status}");
            Ok((conn, 1))
        }
    })
    .await
}

/// `clients` concurrent loops each enqueueing batches of `size`.
pub async fn batched(
    nodes: &[Client],
    size: usize,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let req = std::sync::Arc::new(BatchEnqueueRequest {
        jobs: (0..size).map(|_| noop()).collect(),
    });
    let conns: Vec<Client> = nodes.iter().cycle().take(clients).cloned().collect();
    drive(conns, duration, move |c: Client| {
        let req = req.clone();
        async move {
            let stored = c.enqueue_batch(&req).await?.inserted as u64;
            Ok((c, stored))
        }
    })
    .await
}
