//! How the costs grow with the store's size: the same measurements on an empty store and
//! again after the backlog has grown to each size, then a restart (`kill -9`) with the
//! whole backlog ready, timed to the first job claimed.
//!
//! Each step: single enqueue from one client (rate, latency, server CPU per enqueue), a
//! worker keeping 16 jobs in flight that drains [`DRAIN`] jobs off the backlog's queue with
//! one request per job (the claim carries the last settlement), the queue's counts
//! (`GET /v1/queues/{queue}`) read back to back, and the server's resident memory.

use std::time::{Duration, Instant};

use errand_api::ClaimRequest;

use super::stats::histogram;
use super::worker_cycle::{self, Cycle};
use super::{enqueue, results::rss_bytes, worker_library, Deployment};

/// Jobs each step drains off the backlog's queue (added to it first, so the backlog keeps
/// its size).
pub const DRAIN: usize = 20_000;
/// Counts reads timed per step.
const COUNT_READS: usize = 200;

/// The backlog sizes measured: empty, a tenth of `largest`, and `largest`.
pub fn sizes(largest: usize) -> Vec<usize> {
    let mut sizes = vec![0, largest / 10, largest];
    sizes.dedup();
    sizes
}

/// Runs every step on `d`'s first server, then restarts it.
pub async fn run(d: &mut Deployment, largest: usize, duration: Duration) -> anyhow::Result<()> {
    let mut held = 0usize;
    println!("{:<12} {:<44} figures", "backlog", "measurement");
    for size in sizes(largest) {
        let started = Instant::now();
        worker_library::fill(&d.clients[0], worker_cycle::QUEUE, size - held + DRAIN).await?;
        held = size;
        let label = format!("{size}");
        println!(
            "{label:<12} {:<44} {:.1} s",
            "(growing the backlog took)",
            started.elapsed().as_secs_f64()
        );
        let enq = d
            .measure(enqueue::single(&d.clients[..1], 1, duration))
            .await?;
        enq.print(&format!("{label:<12} enqueue, 1 client"));
        let drain = d
            .measure(worker_cycle::run(&d.clients[0], DRAIN, Cycle::OneCall))
            .await?;
        drain.print(&format!("{label:<12} claim-1 x16 carrying settlements"));
        let mut h = histogram();
        for _ in 0..COUNT_READS {
            let t = Instant::now();
            d.clients[0].queue(worker_cycle::QUEUE).await?;
            h.saturating_record(t.elapsed().as_micros() as u64);
        }
        println!(
            "{label:<12} {:<44} p50 {:.2} ms  p99 {:.2} ms",
            "queue counts",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0
        );
        if let Some(rss) = d.servers.first().and_then(|s| s.pid()).and_then(rss_bytes) {
            println!(
                "{label:<12} {:<44} {:.1} MiB",
                "server resident memory",
                rss as f64 / (1024.0 * 1024.0)
            );
        }
    }
    let Some(server) = d.servers.first_mut() else {
        return Ok(());
    };
    let label = format!("{held}");
    let t = Instant::now();
    server.restart_same_port().await?;
    let ready = t.elapsed();
    let claim = ClaimRequest {
        worker: Some("after-restart".into()),
        max: Some(1),
        wait_ms: Some(5_000),
        ..Default::default()
    };
    let got = d.clients[0].claim(worker_cycle::QUEUE, &claim).await?;
    let first = t.elapsed();
    anyhow::ensure!(got.jobs.len() == 1, "no job claimed after the restart");
    println!(
        "{label:<12} {:<44} ready {:.0} ms, first job claimed {:.0} ms",
        "restart after kill -9",
        ready.as_secs_f64() * 1000.0,
        first.as_secs_f64() * 1000.0
    );
    if let Some(rss) = server.pid().and_then(rss_bytes) {
        println!(
            "{label:<12} {:<44} {:.1} MiB",
            "server resident memory after the restart",
            rss as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}
