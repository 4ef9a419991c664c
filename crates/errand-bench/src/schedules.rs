//! Firing lateness: many schedules firing every second; lateness is the delay from a slot's
//! time to the moment a waiting worker's claim returns the job for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_api::{ClaimRequest, JobTemplateRequest, ScheduleRequest, SettleRequest};
use errand_client::Client;
use errand_core::duration::FlexDuration;
use errand_core::schedule_spec::OverlapPolicy;
use tokio::sync::Mutex;

use super::stats::{histogram, Figures};

/// Waiting workers, each claiming in batches so a second's slots are taken in a few calls.
const WORKERS: usize = 4;
/// Slots before this are warm-up (schedules still being created) and not measured.
const WARM_UP: Duration = Duration::from_secs(2);

/// Creates `count` every-second schedules and measures for `duration`.
pub async fn run(nodes: &[Client], count: usize, duration: Duration) -> anyhow::Result<Figures> {
    let client = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    for i in 0..count {
        client
            .schedule_create(&ScheduleRequest {
                name: format!("bench-{i}"),
                every: Some(FlexDuration(Duration::from_secs(1))),
                overlap: Some(OverlapPolicy::Allow),
                job: Some(JobTemplateRequest {
                    kind: "noop".into(),
                    queue: Some("scheduled".into()),
                    ..JobTemplateRequest::default()
                }),
                ..ScheduleRequest::default()
            })
            .await?;
    }
    let measure_from = jiff::Timestamp::now() + WARM_UP;
    let measure_to = measure_from + duration;
    let hist = Arc::new(Mutex::new(histogram()));
    // The latest job of each measured slot, by slot: one slow slot can hold the whole p99.
    let last_of_slot = Arc::new(Mutex::new(std::collections::BTreeMap::<i64, u64>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let c = nodes[w % nodes.len()].clone();
        let hist = hist.clone();
        let last_of_slot = last_of_slot.clone();
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let claim = ClaimRequest {
                worker: Some(format!("sched-{w}")),
                max: Some(500),
                wait_ms: Some(500),
                lease_ms: Some(60_000),
                kinds: vec![],
                ..Default::default()
            };
            while !done.load(Ordering::Relaxed) {
                let got = c.claim("scheduled", &claim).await?;
                let now = jiff::Timestamp::now();
                if got.jobs.is_empty() {
                    continue;
                }
                {
                    let mut h = hist.lock().await;
                    let mut last = last_of_slot.lock().await;
                    for j in &got.jobs {
                        if let Some(slot) = j.slot.filter(|s| *s >= measure_from && *s < measure_to)
                        {
                            let late = now.duration_since(slot).as_micros().max(1) as u64;
                            h.saturating_record(late);
                            let worst = last.entry(slot.as_second()).or_default();
                            *worst = (*worst).max(late);
                        }
                    }
                }
                c.settle(&SettleRequest::complete_all(&got.jobs)).await?;
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(WARM_UP + duration + Duration::from_secs(1)).await;
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    let mut lasts: Vec<u64> = last_of_slot.lock().await.values().copied().collect();
    lasts.sort_unstable();
    if let (Some(first), Some(worst)) = (lasts.first(), lasts.last()) {
        println!(
            "  (the last job of each of {} slots: fastest {:.1} ms, median {:.1} ms, slowest {:.1} ms)",
            lasts.len(),
            *first as f64 / 1000.0,
            lasts[lasts.len() / 2] as f64 / 1000.0,
            *worst as f64 / 1000.0
        );
    }
    let h = hist.lock().await.clone();
    Ok(Figures {
        jobs: h.len(),
        elapsed: started
            .elapsed()
            .saturating_sub(WARM_UP + Duration::from_secs(1)),
        latency: Some(h),
        cpu: Default::default(),
    })
}
