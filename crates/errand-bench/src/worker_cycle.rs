//! A worker that keeps 16 jobs in flight over HTTP, one job per slot: each slot claims
//! one job, finishes it at once and asks for the next, until `jobs` jobs are done (the
//! queue may hold more). Run twice on the same filled queue
//! shape: with two requests per job (claim, then complete through `POST /v1/jobs/settle`)
//! and with one (the claim carries the settlement of the job the slot just finished).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use errand_api::{ClaimRequest, ClaimedJobView, SettleRequest};
use errand_client::Client;

use super::stats::{histogram, Figures};

/// The queue of this scenario.
pub const QUEUE: &str = "cycle";
/// Jobs in flight at once.
pub const SLOTS: usize = 16;

/// How a slot settles the job it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// `POST /v1/jobs/settle`, then a claim: two round trips per job.
    TwoCalls,
    /// One claim carrying the settlement: one round trip per job.
    OneCall,
}

fn claim_one(slot: usize) -> ClaimRequest {
    ClaimRequest {
        worker: Some(format!("slot-{slot}")),
        max: Some(1),
        wait_ms: Some(200),
        lease_ms: Some(60_000),
        ..Default::default()
    }
}

/// Drains `jobs` jobs (already enqueued to [`QUEUE`]) with [`SLOTS`] slots settling the
/// `cycle` way; the latency is one slot's cycle (from asking for a job to holding it).
pub async fn run(client: &Client, jobs: usize, cycle: Cycle) -> anyhow::Result<Figures> {
    let done = Arc::new(AtomicU64::new(0));
    let target = jobs as u64;
    let start = Instant::now();
    let mut slots = Vec::new();
    for slot in 0..SLOTS {
        let c = client.clone();
        let done = done.clone();
        slots.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut finished: Option<ClaimedJobView> = None;
            let mut last_done = None;
            loop {
                if done.load(Ordering::Relaxed) >= target {
                    // Enough: the job in hand is settled on its own, and nothing more is
                    // claimed (the queue may hold a larger backlog).
                    if finished.is_some() {
                        c.settle(&SettleRequest::complete_all(finished.as_slice()))
                            .await?;
                    }
                    return anyhow::Ok((h, last_done));
                }
                let t = Instant::now();
                let settle = SettleRequest::complete_all(finished.as_slice());
                let got = match cycle {
                    Cycle::TwoCalls => {
                        if finished.is_some() {
                            c.settle(&settle).await?;
                        }
                        c.claim(QUEUE, &claim_one(slot)).await?
                    }
                    Cycle::OneCall => {
                        c.claim(
                            QUEUE,
                            &ClaimRequest {
                                completions: settle.completions,
                                ..claim_one(slot)
                            },
                        )
                        .await?
                    }
                };
                if finished.take().is_some() {
                    done.fetch_add(1, Ordering::Relaxed);
                    last_done = Some(Instant::now());
                }
                h.record(t.elapsed().as_micros() as u64).ok();
                // The no-op job is finished as soon as it is held.
                finished = got.jobs.into_iter().next();
                if finished.is_none() && done.load(Ordering::Relaxed) >= target {
                    return anyhow::Ok((h, last_done));
                }
            }
        }));
    }
    let mut latency = histogram();
    let mut end = start;
    for s in slots {
        let (h, last_done) = s.await??;
        latency.add(h).ok();
        end = end.max(last_done.unwrap_or(start));
    }
    Ok(Figures {
        jobs: done.load(Ordering::Relaxed),
        // Until the last settlement was answered, not until the slots gave up waiting.
        elapsed: end - start,
        latency: Some(latency),
        cpu: Default::default(),
    })
}
