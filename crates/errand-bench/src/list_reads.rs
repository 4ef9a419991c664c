//! Read latency of the listings on a large store: loads `jobs` jobs with batch enqueue
//! (spread over a few queues, kinds and tags, plus one rare tag), then times each listing
//! with one client, one request after the other, so that the figures are the server's
//! cost of a read and not queueing behind other reads.

use std::time::{Duration, Instant};

use errand_api::{BatchEnqueueRequest, EnqueueRequest, JobListQuery};
use errand_client::Client;
use futures_util::future::BoxFuture;
use hdrhistogram::Histogram;

use super::stats::histogram;

/// Queues, kinds and common tags the jobs are spread over.
const QUEUES: usize = 4;
const KINDS: usize = 8;
const TAGS: usize = 8;
/// One job in this many also carries the tag `rare`, and has the kind `rare`.
const RARE_EVERY: usize = 1000;
/// Jobs per batch enqueue (the API's limit).
const BATCH: usize = 1000;
/// Batch enqueues in flight while loading.
const LOADERS: usize = 4;

fn job(i: usize) -> EnqueueRequest {
    let rare = i.is_multiple_of(RARE_EVERY);
    let mut tags = vec![format!("t{}", i % TAGS)];
    if rare {
        tags.push("rare".into());
    }
    EnqueueRequest {
        queue: Some(format!("q{}", i % QUEUES)),
        payload: Some(serde_json::json!({"n": i})),
        tags,
        ..EnqueueRequest::new(if rare {
            "rare".to_string()
        } else {
            format!("k{}", i % KINDS)
        })
    }
}

/// Enqueues `jobs` jobs in batches, `LOADERS` at a time.
pub(crate) async fn load(client: &Client, jobs: usize) -> anyhow::Result<()> {
    let batches: Vec<(usize, usize)> = (0..jobs)
        .step_by(BATCH)
        .map(|start| (start, (start + BATCH).min(jobs)))
        .collect();
    for group in batches.chunks(LOADERS) {
        let sends = group.iter().map(|&(start, end)| {
            let req = BatchEnqueueRequest {
                jobs: (start..end).map(job).collect(),
            };
            async move { client.enqueue_batch(&req).await }
        });
        for r in futures_util::future::join_all(sends).await {
            r?;
        }
    }
    Ok(())
}

/// Times `read` back to back for `duration` (at least 10 requests).
async fn time<F>(duration: Duration, mut read: F) -> anyhow::Result<Histogram<u64>>
where
    F: FnMut() -> BoxFuture<'static, anyhow::Result<()>>,
{
    let mut h = histogram();
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline || h.len() < 10 {
        let t = Instant::now();
        read().await?;
        h.saturating_record(t.elapsed().as_micros() as u64);
    }
    Ok(h)
}

fn print(name: &str, h: &Histogram<u64>) {
    println!(
        "list reads, {name:<34} n {:>5}  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        h.len(),
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

fn list(
    client: &Client,
    query: JobListQuery,
) -> impl FnMut() -> BoxFuture<'static, anyhow::Result<()>> {
    let client = client.clone();
    move || {
        let client = client.clone();
        let query = query.clone();
        Box::pin(async move {
            client.jobs(&query).await?;
            Ok(())
        })
    }
}

/// Loads the store, then prints p50/p99/max of each listing.
pub async fn run(nodes: &[Client], jobs: usize, duration: Duration) -> anyhow::Result<()> {
    let client = nodes
        .first()
        .ok_or_else(|| anyhow::anyhow!("no server to measure"))?;
    let started = Instant::now();
    load(client, jobs).await?;
    println!(
        "list reads: loaded {jobs} jobs in {:.1}s ({QUEUES} queues, {KINDS} kinds, {TAGS} tags, 1 in {RARE_EVERY} of tag and kind rare)",
        started.elapsed().as_secs_f64()
    );
    let page = |f: fn(&mut JobListQuery)| {
        let mut q = JobListQuery {
            limit: Some(100),
            ..JobListQuery::default()
        };
        f(&mut q);
        q
    };
    let cases: Vec<(&str, JobListQuery)> = vec![
        ("GET /v1/jobs (no filter)", page(|_| {})),
        (
            "GET /v1/jobs?tag=t3 (1 in 8)",
            page(|q| q.tag = Some("t3".into())),
        ),
        (
            "GET /v1/jobs?tag=rare (1 in 1000)",
            page(|q| q.tag = Some("rare".into())),
        ),
        (
            "GET /v1/jobs?kind=k5 (1 in 8)",
            page(|q| q.kind = Some("k5".into())),
        ),
        (
            "GET /v1/jobs?kind=rare (1 in 1000)",
            page(|q| q.kind = Some("rare".into())),
        ),
        (
            "GET /v1/jobs?queue=q1&state=available",
            page(|q| {
                q.queue = Some("q1".into());
                q.state = Some("available".into());
            }),
        ),
    ];
    for (name, query) in cases {
        print(name, &time(duration, list(client, query)).await?);
    }
    let queues = client.clone();
    let h = time(duration, move || {
        let c = queues.clone();
        Box::pin(async move {
            c.queues().await?;
            Ok(())
        })
    })
    .await?;
    print("GET /v1/queues", &h);
    let queue = client.clone();
    let h = time(duration, move || {
        let c = queue.clone();
        Box::pin(async move {
            c.queue("q1").await?;
            Ok(())
        })
    })
    .await?;
    print("GET /v1/queues/q1", &h);
    Ok(())
}
