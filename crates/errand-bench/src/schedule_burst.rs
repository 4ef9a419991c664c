//! API latency while many schedules come due at once. `count` schedules share one interval,
//! so all their slots fall on the same instant (intervals align to the epoch). Probes
//! enqueue one job each, back to back, the whole time; their latency is split into
//! requests that started within [`BURST_WINDOW`] after a shared slot ("burst") and the rest
//! ("quiet"). A monitor reads the burst queue's counts to time how long each burst took to
//! enqueue all of its jobs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_api::{EnqueueRequest, JobTemplateRequest, ScheduleRequest};
use errand_client::Client;
use errand_core::duration::FlexDuration;
use errand_core::schedule_spec::{CatchUpPolicy, OverlapPolicy};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;

use super::stats::histogram;

/// The shared interval: bursts every 10 s give several within the one-minute bench budget.
const EVERY: Duration = Duration::from_secs(10);
/// Requests that start this soon after a shared slot count as "during the burst".
const BURST_WINDOW: Duration = Duration::from_secs(2);
/// Concurrent probe clients, each sending one enqueue after the other.
const PROBES: usize = 4;
/// Schedule creations in flight while setting up.
const SETUP_CONCURRENCY: usize = 16;

/// What the scenario measured.
pub struct BurstFigures {
    count: usize,
    quiet: Histogram<u64>,
    burst: Histogram<u64>,
    /// Per burst: from its slot to the moment every one of its jobs was seen.
    spans: Vec<Duration>,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

impl BurstFigures {
    /// Prints the two latency distributions and the burst spans.
    pub fn print(&self) {
        for (name, h) in [("quiet", &self.quiet), ("burst", &self.burst)] {
            println!(
                "schedule burst ({} due at once), enqueue latency {name:<5}: n {:>6}  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                self.count,
                h.len(),
                ms(h, 0.5),
                ms(h, 0.99),
                h.max() as f64 / 1000.0
            );
        }
        let spans: Vec<String> = self
            .spans
            .iter()
            .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
            .collect();
        println!(
            "schedule burst: all {} jobs of a burst enqueued within {}",
            self.count,
            spans.join(", ")
        );
    }
}

/// Jobs the bursts have enqueued so far (the queue exists once the first one fired).
async fn burst_jobs(client: &Client) -> u64 {
    client
        .queue("burst")
        .await
        .map(|q| q.counts.available)
        .unwrap_or(0)
}

/// Milliseconds since the last shared slot, on this machine's clock.
fn phase(now: jiff::Timestamp) -> u64 {
    let every = EVERY.as_millis() as i64;
    now.as_millisecond().rem_euclid(every) as u64
}

/// Creates `count` schedules and measures for `duration` from the next shared slot.
pub async fn run(
    nodes: &[Client],
    count: usize,
    duration: Duration,
) -> anyhow::Result<BurstFigures> {
    let client = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    let created = futures_util::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                client
                    .schedule_create(&ScheduleRequest {
                        name: format!("burst-{i}"),
                        every: Some(FlexDuration(EVERY)),
                        overlap: Some(OverlapPolicy::Allow),
                        catch_up: Some(CatchUpPolicy::Skip),
                        job: Some(JobTemplateRequest {
                            kind: "noop".into(),
                            queue: Some("burst".into()),
                            ..JobTemplateRequest::default()
                        }),
                        ..ScheduleRequest::default()
                    })
                    .await
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for c in created {
        c?;
    }
    // Start at a shared slot every schedule already existed for, at least a second away so
    // any slot the creation crossed has finished firing before the count is read.
    let mut wait = EVERY.as_millis() as u64 - phase(jiff::Timestamp::now());
    if wait < 1_000 {
        wait += EVERY.as_millis() as u64;
    }
    tokio::time::sleep(Duration::from_millis(wait.saturating_sub(500))).await;
    let base = burst_jobs(client).await;
    tokio::time::sleep(Duration::from_millis(500 + 20)).await;
    let start = Instant::now();
    let quiet = Arc::new(Mutex::new(histogram()));
    let burst = Arc::new(Mutex::new(histogram()));
    let mut probes = Vec::new();
    for p in 0..PROBES {
        let c = nodes[p % nodes.len()].clone();
        let (quiet, burst) = (quiet.clone(), burst.clone());
        probes.push(tokio::spawn(async move {
            while start.elapsed() < duration {
                let at = jiff::Timestamp::now();
                let t0 = Instant::now();
                c.enqueue(&EnqueueRequest {
                    queue: Some("probe".into()),
                    ..EnqueueRequest::new("probe")
                })
                .await?;
                let micros = t0.elapsed().as_micros().max(1) as u64;
                let h = if phase(at) < BURST_WINDOW.as_millis() as u64 {
                    &burst
                } else {
                    &quiet
                };
                h.lock().await.saturating_record(micros);
            }
            anyhow::Ok(())
        }));
    }
    // The monitor: when the burst queue holds every job of the k-th burst.
    let mut spans = Vec::new();
    let mut k = 0u64;
    let mut burst_start = Instant::now() - Duration::from_millis(phase(jiff::Timestamp::now()));
    while start.elapsed() < duration {
        let seen = burst_jobs(client).await.saturating_sub(base);
        if seen >= (k + 1) * count as u64 {
            spans.push(burst_start.elapsed());
            k += 1;
            tokio::time::sleep(EVERY.saturating_sub(burst_start.elapsed())).await;
            burst_start = Instant::now() - Duration::from_millis(phase(jiff::Timestamp::now()));
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for p in probes {
        p.await??;
    }
    let quiet = quiet.lock().await.clone();
    let burst = burst.lock().await.clone();
    Ok(BurstFigures {
        count,
        quiet,
        burst,
        spans,
    })
}
