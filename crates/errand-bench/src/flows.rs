//! Workflows and batches (issue 12): how soon a child step is claimable after its last
//! parent completes, workflows per second end to end, and a large batch's fan-in delay.
//!
//! Every latency is read on one monotonic clock in this process: from just before the
//! request that completes the last parent (or the last job of a batch) is sent, to the
//! moment a worker's long-polling claim, already waiting, returns the child (or the batch's
//! `on_complete` job). So it includes the completing request's own round trip, the end
//! hook's transaction and the wake-up of the waiting claim.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use errand_api::{ClaimRequest, ClaimResponse, ClaimedJobView, SettleRequest};
use errand_client::Client;
use hyper::body::Bytes;
use serde_json::{json, Value};

use super::raw_http::RawConnection;
use super::stats::{histogram, Figures};

/// Queue of the first step of each two-step chain.
const CHAIN_A: &str = "chain-a";
/// Queue of the second step: only released children are ever in it.
const CHAIN_B: &str = "chain-b";
/// Queue of every step of the end-to-end workflows.
const WORKFLOW_QUEUE: &str = "wf3";
/// Queue of a batch's jobs.
const FAN_OUT: &str = "fan-out";
/// Queue of a batch's `on_complete` job.
const FAN_IN: &str = "fan-in";
/// Concurrent workflow producers (each its own connection).
const PRODUCERS: usize = 16;
/// Workers of the end-to-end and batch parts.
const WORKERS: usize = 8;
/// Jobs per claim and settle.
const CLAIM_BATCH: u32 = 500;
/// How long a timed waiting claim may wait before the child counts as lost.
const WAIT_MS: u64 = 10_000;
/// How long a part's workers may take before the run is called stuck.
const GIVE_UP: std::time::Duration = std::time::Duration::from_secs(900);

/// `method path` with a JSON body on `conn`; the answer's JSON, or an error naming the
/// status and body.
async fn call(
    conn: &mut RawConnection,
    method: hyper::Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let bytes = match body {
        Some(b) => Bytes::from(serde_json::to_vec(b)?),
        None => Bytes::new(),
    };
    let (status, answer) = conn.exchange(method.clone(), path, bytes).await?;
    anyhow::ensure!(
        (200..300).contains(&status),
        "{method} {path} answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(serde_json::from_slice(&answer)?)
}

/// A claim of at most `max` jobs waiting up to `wait_ms`.
fn claim(worker: &str, max: u32, wait_ms: u64) -> ClaimRequest {
    ClaimRequest {
        worker: Some(worker.into()),
        max: Some(max),
        wait_ms: Some(wait_ms),
        lease_ms: Some(600_000),
        kinds: vec![],
        ..Default::default()
    }
}

/// Completes every job of `jobs`, checking each completion went through.
async fn complete(client: &Client, jobs: &[ClaimedJobView]) -> anyhow::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let out = client.settle(&SettleRequest::complete_all(jobs)).await?;
    let failed: Vec<_> = out.results.iter().filter(|r| r.error.is_some()).collect();
    anyhow::ensure!(failed.is_empty(), "completions refused: {failed:?}");
    Ok(())
}

/// The body of a workflow of `steps` noop steps in a chain, all in `queues[i]`, each
/// carrying `tag` in its payload.
fn chain(tag: usize, queues: &[&str]) -> Value {
    let steps: Vec<Value> = queues
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let mut step = json!({
                "name": format!("s{i}"),
                "job": {"kind": "noop", "queue": q, "payload": {"chain": tag}},
            });
            if i > 0 {
                step["depends_on"] = json!([format!("s{}", i - 1)]);
            }
            step
        })
        .collect();
    json!({ "steps": steps })
}

/// Starts `count` workflows built by `make`, [`PRODUCERS`] at a time, spread over `nodes`.
async fn start_workflows(
    nodes: &[Client],
    count: usize,
    make: fn(usize) -> Value,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut producers = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let base = nodes[p % nodes.len()].base_url().to_string();
        let next = next.clone();
        producers.spawn(async move {
            let mut conn = RawConnection::connect(&base).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= count {
                    break;
                }
                call(
                    &mut conn,
                    hyper::Method::POST,
                    "/v1/workflows",
                    Some(&make(i)),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = producers.join_next().await {
        r??;
    }
    Ok(())
}

/// (a) Two-step chains, one at a time: a worker holds the first step's job, a second worker
/// waits in a long-polling claim on the second step's queue (on another node when there
/// are several), and the first completes. Latency: completion sent → child claimed.
pub async fn release_latency(nodes: &[Client], chains: usize) -> anyhow::Result<Figures> {
    let first = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    start_workflows(nodes, chains, |i| chain(i, &[CHAIN_A, CHAIN_B])).await?;
    let mut h = histogram();
    let start = Instant::now();
    for i in 0..chains {
        let got = first.claim(CHAIN_A, &claim("parent", 1, WAIT_MS)).await?;
        let parent = got
            .jobs
            .first()
            .ok_or_else(|| anyhow::anyhow!("chain {i}: no first step to claim"))?
            .clone();
        let waiter = nodes[(i + 1) % nodes.len()].clone();
        let child = tokio::spawn(async move {
            let got: ClaimResponse = waiter.claim(CHAIN_B, &claim("child", 1, WAIT_MS)).await?;
            anyhow::Ok((Instant::now(), got, waiter))
        });
        // Let the waiting claim reach the server first (it is answered at once if the child
        // is already there, so this only keeps the measurement honest, never blocks).
        tokio::task::yield_now().await;
        let sent = Instant::now();
        complete(first, std::slice::from_ref(&parent)).await?;
        let (claimed, got, waiter) = child.await??;
        let job = got.jobs.first().ok_or_else(|| {
            anyhow::anyhow!("chain {i}: the child was not claimable within {WAIT_MS} ms")
        })?;
        anyhow::ensure!(
            job.payload["chain"] == parent.payload["chain"],
            "chain {i}: claimed the child of another chain"
        );
        h.saturating_record(claimed.saturating_duration_since(sent).as_micros().max(1) as u64);
        complete(&waiter, &got.jobs).await?;
    }
    Ok(Figures {
        jobs: chains as u64,
        elapsed: start.elapsed(),
        latency: Some(h),
        cpu: Default::default(),
    })
}

/// Workers claiming from `queue` and completing everything until `done` reaches `target`.
fn spawn_workers(
    nodes: &[Client],
    queue: &'static str,
    done: Arc<AtomicU64>,
    target: u64,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    (0..WORKERS)
        .map(|w| {
            let c = nodes[w % nodes.len()].clone();
            let done = done.clone();
            tokio::spawn(async move {
                let req = claim(&format!("w{w}"), CLAIM_BATCH, 200);
                while done.load(Ordering::Relaxed) < target {
                    let got = c.claim(queue, &req).await?;
                    complete(&c, &got.jobs).await?;
                    done.fetch_add(got.jobs.len() as u64, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect()
}

/// Counts the workflows in `state` by paging `GET /v1/workflows`.
async fn count_workflows(client: &Client, state: &str) -> anyhow::Result<usize> {
    let mut conn = RawConnection::connect(client.base_url()).await?;
    let mut count = 0;
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/v1/workflows?state={state}&limit=1000");
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let page = call(&mut conn, hyper::Method::GET, &path, None).await?;
        count += page["workflows"].as_array().map_or(0, Vec::len);
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => return Ok(count),
        }
    }
}

/// (b) `count` three-step chains started by producers while workers claim and complete
/// steps in batches. Rate: workflows over the time until the last step completed; every
/// workflow is then checked `succeeded`.
pub async fn workflows_end_to_end(nodes: &[Client], count: usize) -> anyhow::Result<Figures> {
    let first = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    let done = Arc::new(AtomicU64::new(0));
    let target = 3 * count as u64;
    let start = Instant::now();
    let workers = spawn_workers(nodes, WORKFLOW_QUEUE, done.clone(), target);
    start_workflows(nodes, count, |i| {
        chain(i, &[WORKFLOW_QUEUE, WORKFLOW_QUEUE, WORKFLOW_QUEUE])
    })
    .await?;
    let started = start.elapsed();
    for w in workers {
        tokio::time::timeout(GIVE_UP, w)
            .await
            .map_err(|_| anyhow::anyhow!("the workflows did not finish within {GIVE_UP:?}"))???;
    }
    let elapsed = start.elapsed();
    println!(
        "  ({count} workflows started in {:.2}s, {:.0}/s; {} step jobs completed)",
        started.as_secs_f64(),
        count as f64 / started.as_secs_f64().max(1e-9),
        done.load(Ordering::Relaxed)
    );
    // The last step's end hook ran in the transaction that completed it.
    let succeeded = count_workflows(first, "succeeded").await?;
    anyhow::ensure!(
        succeeded == count,
        "{succeeded} of {count} workflows succeeded"
    );
    Ok(Figures {
        jobs: count as u64,
        elapsed,
        latency: None,
        cpu: Default::default(),
    })
}

/// (c) A batch of `size` jobs with an `on_complete` job: workers complete all but one, a
/// claim waits on the `on_complete` queue, then the last job is completed. Latency: last
/// completion sent → `on_complete` claimed; `rounds` batches, one after the other. Rate and
/// server CPU are per batch job, over the whole of each round (enqueue, work, fan-in).
pub async fn batch_fan_in(nodes: &[Client], size: usize, rounds: usize) -> anyhow::Result<Figures> {
    let first = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    let mut conn = RawConnection::connect(first.base_url()).await?;
    let mut h = histogram();
    let start = Instant::now();
    for round in 0..rounds {
        let jobs: Vec<Value> = (0..size)
            .map(|i| json!({"kind": "noop", "queue": FAN_OUT, "payload": {"i": i}}))
            .collect();
        let body = json!({
            "jobs": jobs,
            "on_complete": {"kind": "fan-in", "queue": FAN_IN, "payload": {"round": round}},
        });
        let t = Instant::now();
        let created = call(&mut conn, hyper::Method::POST, "/v1/batches", Some(&body)).await?;
        let enqueued = t.elapsed();
        let id = created["batch"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no batch id in {created}"))?
            .to_string();
        // Hold one job back: it is the batch's last to end.
        let held = first.claim(FAN_OUT, &claim("held", 1, WAIT_MS)).await?;
        anyhow::ensure!(held.jobs.len() == 1, "no batch job to hold");
        let t = Instant::now();
        let done = Arc::new(AtomicU64::new(0));
        for w in spawn_workers(nodes, FAN_OUT, done.clone(), size as u64 - 1) {
            tokio::time::timeout(GIVE_UP, w)
                .await
                .map_err(|_| anyhow::anyhow!("the batch was not worked within {GIVE_UP:?}"))???;
        }
        let worked = t.elapsed();
        anyhow::ensure!(
            done.load(Ordering::Relaxed) == size as u64 - 1,
            "{} of {} batch jobs completed",
            done.load(Ordering::Relaxed),
            size - 1
        );
        let waiter = nodes[(round + 1) % nodes.len()].clone();
        let fan_in = tokio::spawn(async move {
            let got = waiter.claim(FAN_IN, &claim("fan-in", 2, WAIT_MS)).await?;
            anyhow::Ok((Instant::now(), got, waiter))
        });
        tokio::task::yield_now().await;
        let sent = Instant::now();
        complete(first, &held.jobs).await?;
        let (claimed, got, waiter) = fan_in.await??;
        anyhow::ensure!(
            got.jobs.len() == 1 && got.jobs[0].payload["round"] == round,
            "round {round}: on_complete claimed {} times: {:?}",
            got.jobs.len(),
            got.jobs.iter().map(|j| &j.payload).collect::<Vec<_>>()
        );
        let delay = claimed.saturating_duration_since(sent);
        h.saturating_record(delay.as_micros().max(1) as u64);
        complete(&waiter, &got.jobs).await?;
        // Exactly once: nothing more comes.
        let again = first.claim(FAN_IN, &claim("fan-in", 2, 200)).await?;
        anyhow::ensure!(again.jobs.is_empty(), "on_complete enqueued twice");
        let batch = call(
            &mut conn,
            hyper::Method::GET,
            &format!("/v1/batches/{id}"),
            None,
        )
        .await?;
        let view = batch.get("batch").unwrap_or(&batch);
        anyhow::ensure!(
            view["state"] == "completed" && view["counts"]["succeeded"] == size,
            "round {round}: the batch reads {view}"
        );
        println!(
            "  batch {round}: {size} jobs enqueued in {:.2}s, worked in {:.2}s ({:.0} jobs/s), \
             fan-in {:.2} ms",
            enqueued.as_secs_f64(),
            worked.as_secs_f64(),
            (size - 1) as f64 / worked.as_secs_f64().max(1e-9),
            delay.as_secs_f64() * 1000.0
        );
    }
    // Rate and CPU per batch job (enqueue, claim, settle, counting); latency: the fan-in.
    Ok(Figures {
        jobs: (rounds * size) as u64,
        elapsed: start.elapsed(),
        latency: Some(h),
        cpu: Default::default(),
    })
}
