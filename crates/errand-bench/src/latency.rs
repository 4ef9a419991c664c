//! Enqueue-to-start latency: one job every 1/rate seconds; workers wait in long-polling
//! claims, each carrying the settlement of the jobs its previous claim returned. Latency is
//! from just before the enqueue request is sent to the moment a worker's claim returns the
//! job, both read from one monotonic clock in this process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_api::{ClaimRequest, EnqueueRequest, SettleRequest};
use errand_client::Client;
use tokio::sync::Mutex;

use super::stats::{histogram, Figures};

/// Waiting workers; several so a claim is always outstanding while another is answered.
const WORKERS: usize = 4;

/// Jobs sent before this, counted in the run's figures, are left out of a further line: in
/// its first half second or so a fresh server parses and plans each statement on each new
/// database connection. (A fresh store's `ANALYZE`s at each doubling of its table keep
/// coming after it.)
const WARM_UP: Duration = Duration::from_secs(2);

/// Runs the steady-rate scenario for `duration`.
pub async fn run(nodes: &[Client], rate: u32, duration: Duration) -> anyhow::Result<Figures> {
    let client = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    let base = Instant::now();
    // The same moment by the wall clock, so the slowest job can be found in a database's log.
    let base_wall = jiff::Timestamp::now();
    // The slowest job's lateness and send time, both in µs from `base`.
    let slowest = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let hist = Arc::new(Mutex::new(histogram()));
    let steady = Arc::new(Mutex::new(histogram()));
    let warm_up = WARM_UP.as_micros() as u64;
    let total = (u64::from(rate) * duration.as_millis() as u64 / 1000).max(1);
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        // Workers spread over the nodes; on several nodes their wake-ups cross nodes.
        let c = nodes[w % nodes.len()].clone();
        let hist = hist.clone();
        let steady = steady.clone();
        let seen = seen.clone();
        let slowest = slowest.clone();
        workers.push(tokio::spawn(async move {
            let claim = ClaimRequest {
                worker: Some(format!("latency-{w}")),
                max: Some(50),
                wait_ms: Some(500),
                lease_ms: Some(60_000),
                kinds: vec![],
                ..Default::default()
            };
            // The jobs in hand: no-ops, finished as soon as held, settled by the next claim
            // (one round trip per cycle, as `errand-worker` does it).
            let mut finished = Vec::new();
            while seen.load(std::sync::atomic::Ordering::Relaxed) < total {
                let settle = SettleRequest::complete_all(&finished);
                let carrying = ClaimRequest {
                    completions: settle.completions,
                    ..claim.clone()
                };
                let got = c.claim("latency", &carrying).await?;
                let now = base.elapsed().as_micros() as u64;
                finished = got.jobs;
                if finished.is_empty() {
                    continue;
                }
                {
                    let mut h = hist.lock().await;
                    let mut s = steady.lock().await;
                    for j in &finished {
                        let sent = j.payload.get("t").and_then(|v| v.as_u64()).unwrap_or(now);
                        let late = now.saturating_sub(sent).max(1);
                        h.saturating_record(late);
                        if sent >= warm_up {
                            s.saturating_record(late);
                        }
                        if let Ok(mut worst) = slowest.lock() {
                            if late > worst.0 {
                                *worst = (late, sent);
                            }
                        }
                    }
                }
                seen.fetch_add(finished.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            if !finished.is_empty() {
                c.settle(&SettleRequest::complete_all(&finished)).await?;
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..total {
        ticker.tick().await;
        let c = client.clone();
        let t = base.elapsed().as_micros() as u64;
        producers.spawn(async move {
            let sent = Instant::now();
            c.enqueue(&EnqueueRequest {
                queue: Some("latency".into()),
                payload: Some(serde_json::json!({ "t": t })),
                ..EnqueueRequest::new("noop")
            })
            .await
            .map(|_| sent.elapsed())
        });
    }
    // The enqueue's own round trip is part of enqueue-to-start; report it apart so a slow
    // tail can be told from a slow wake-up.
    let mut acks = histogram();
    while let Some(r) = producers.join_next().await {
        acks.saturating_record(r??.as_micros() as u64);
    }
    println!(
        "  (enqueue acknowledgement within that: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms)",
        acks.value_at_quantile(0.5) as f64 / 1000.0,
        acks.value_at_quantile(0.99) as f64 / 1000.0,
        acks.max() as f64 / 1000.0
    );
    for w in workers {
        w.await??;
    }
    let s = steady.lock().await.clone();
    if !s.is_empty() {
        println!(
            "  (jobs sent after the first {} s: {}, p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms)",
            WARM_UP.as_secs(),
            s.len(),
            s.value_at_quantile(0.5) as f64 / 1000.0,
            s.value_at_quantile(0.99) as f64 / 1000.0,
            s.max() as f64 / 1000.0
        );
    }
    if let Ok(&(late, sent)) = slowest.lock().as_deref() {
        let at = base_wall
            .checked_add(jiff::SignedDuration::from_micros(sent as i64))
            .unwrap_or(base_wall);
        println!(
            "  (the slowest job, {:.2} ms, was sent at {at:.3}, to look for in the store's log)",
            late as f64 / 1000.0
        );
    }
    let h = hist.lock().await.clone();
    Ok(Figures {
        jobs: total,
        elapsed: start.elapsed(),
        latency: Some(h),
        cpu: Default::default(),
    })
}
