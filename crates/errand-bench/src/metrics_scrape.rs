//! Cost of `GET /metrics` on a large store: scrapes timed back to back on the empty server,
//! then again after loading `jobs` jobs, one scrape at a time on one keep-alive connection,
//! so the figures are the server's cost of a scrape (and the server CPU it used, read from
//! `/proc`) rather than queueing. A scrape reads the queues' counters, never the jobs, so
//! the two runs should cost about the same.

use std::time::{Duration, Instant};

use errand_client::Client;
use hyper::body::Bytes;

use super::list_reads;
use super::raw_http::RawConnection;
use super::stats::histogram;

/// Times `GET path` back to back on one keep-alive connection for `duration` (at least 20
/// requests); prints p50/p99/max, the server CPU per request when `cpu` can tell, and the
/// answer's size.
pub(crate) async fn time_get(
    label: &str,
    base: &str,
    path: &str,
    duration: Duration,
    cpu: &dyn Fn() -> Option<Duration>,
) -> anyhow::Result<()> {
    let mut conn = RawConnection::connect(base).await?;
    let mut h = histogram();
    let mut bytes = 0;
    let before = cpu();
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline || h.len() < 20 {
        let t = Instant::now();
        let (status, body) = conn
            .exchange(hyper::Method::GET, path, Bytes::new())
            .await?;
        h.saturating_record(t.elapsed().as_micros() as u64);
        anyhow::ensure!(status == 200, "GET {path} answered {status}");
        bytes = body.len();
    }
    let per_scrape = cpu().zip(before).map(|(after, before)| {
        after.saturating_sub(before).as_secs_f64() * 1000.0 / h.len() as f64
    });
    println!(
        "GET {label:<40} n {:>5}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  server CPU {} ms/request  {} bytes",
        h.len(),
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        per_scrape.map_or("?".to_string(), |ms| format!("{ms:.2}")),
        bytes,
    );
    Ok(())
}

/// Scrapes on the empty store, loads `jobs` jobs (4 queues, 8 kinds), scrapes again.
pub async fn run(
    client: &Client,
    jobs: usize,
    duration: Duration,
    cpu: &dyn Fn() -> Option<Duration>,
) -> anyhow::Result<()> {
    let base = client.base_url().trim_end_matches('/').to_string();
    time_get("/metrics, empty store", &base, "/metrics", duration, cpu).await?;
    let started = Instant::now();
    list_reads::load(client, jobs).await?;
    println!(
        "metrics: loaded {jobs} jobs in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    time_get(
        &format!("/metrics, {jobs} jobs"),
        &base,
        "/metrics",
        duration,
        cpu,
    )
    .await
}
