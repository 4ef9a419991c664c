//! What the dashboard costs on a large store: each page's server time and CPU after loading
//! `jobs` jobs (the jobs page by queue, state, kind and tag, the overview, queues and dead
//! list, and `/metrics` beside them), then what `tabs` open overview tabs cost: resident
//! memory, CPU while nothing happens, and CPU while jobs flow against the same flow with no
//! tab open.
//!
//! A simulated tab does what app.js does on the overview: it holds one live stream
//! (`/ui/live?topics=jobs,queues`) and, on each `changed-queues`, fetches
//! `/ui/overview/live`, on each `changed-jobs`, `/ui/series`, on a connection of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_api::{BatchEnqueueRequest, EnqueueRequest};
use errand_client::Client;
use hyper::body::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::metrics_scrape::time_get;
use super::raw_http::RawConnection;
use super::results::{authority, cpu_over, open_get, reach, rss_bytes};
use super::{list_reads, server_cpu};

/// The pages timed on the loaded store (list_reads spreads jobs over `q0..q3`, kinds
/// `k0..k7`, tags `t0..t7` and one in 1,000 tagged `rare`).
const PAGES: [&str; 9] = [
    "/ui/jobs?queue=q0",
    "/ui/jobs?queue=q0&state=available",
    "/ui/jobs?kind=k3",
    "/ui/jobs?tag=rare",
    "/ui/jobs",
    "/",
    "/ui/queues",
    "/ui/dead",
    "/metrics",
];

/// How long the idle and the busy watches last.
const WATCH: Duration = Duration::from_secs(10);

/// Jobs enqueued a second while the busy watches run (in batches of 50).
const FLOW_PER_S: u64 = 500;

/// Loads `jobs` jobs, times every page of [`PAGES`], then measures `tabs` open tabs.
pub async fn run(
    client: &Client,
    pid: Option<u32>,
    jobs: usize,
    tabs: usize,
    duration: Duration,
    cpu: &dyn Fn() -> Option<Duration>,
) -> anyhow::Result<()> {
    let base = client.base_url().trim_end_matches('/').to_string();
    let started = Instant::now();
    list_reads::load(client, jobs).await?;
    println!(
        "dashboard: loaded {jobs} jobs in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    for path in PAGES {
        time_get(path, &base, path, duration, cpu).await?;
    }
    let Some(pid) = pid else {
        println!("dashboard: the server's process is not local; tab costs not measured");
        return Ok(());
    };
    let with = tab_costs(client, &base, pid, tabs).await?;
    let without = tab_costs(client, &base, pid, 0).await?;
    println!(
        "dashboard: {tabs} open overview tabs: +{:.1} MiB resident, idle {:.2} ms CPU/s (none open: {:.2}), {} jobs/s flowing: {:.1} ms CPU/s (none open: {:.1}), {:.0} fragment reads/s",
        with.rss_added as f64 / (1024.0 * 1024.0),
        with.idle_ms_per_s,
        without.idle_ms_per_s,
        FLOW_PER_S,
        with.busy_ms_per_s,
        without.busy_ms_per_s,
        with.fetches_per_s,
    );
    Ok(())
}

/// What `tabs` tabs cost.
struct TabCost {
    rss_added: i64,
    idle_ms_per_s: f64,
    busy_ms_per_s: f64,
    fetches_per_s: f64,
}

/// Opens `tabs` simulated tabs, watches the server idle and then while jobs flow, closes
/// them.
async fn tab_costs(client: &Client, base: &str, pid: u32, tabs: usize) -> anyhow::Result<TabCost> {
    let auth = authority(base)?;
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let opened = Arc::new(AtomicU64::new(0));
    let fetches = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..tabs {
        let (auth, base) = (auth.clone(), base.to_string());
        let (opened, fetches) = (opened.clone(), fetches.clone());
        tasks.spawn(async move {
            let stream = open_get(&auth, "/ui/live?topics=jobs,queues").await?;
            let mut fragments = RawConnection::connect(&base).await?;
            let mut lines = BufReader::new(stream).lines();
            let status = lines.next_line().await?.unwrap_or_default();
            anyhow::ensure!(
                status.starts_with("HTTP/1.1 200"),
                "stream refused: {status}"
            );
            opened.fetch_add(1, Ordering::Relaxed);
            while let Some(line) = lines.next_line().await? {
                let fragment = match line.as_str() {
                    "event: changed-queues" => "/ui/overview/live",
                    "event: changed-jobs" => "/ui/series",
                    _ => continue,
                };
                let (status, _) = fragments
                    .exchange(hyper::Method::GET, fragment, Bytes::new())
                    .await?;
                anyhow::ensure!(status == 200, "GET {fragment} answered {status}");
                fetches.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    reach(&opened, tabs as u64, Duration::from_secs(60)).await?;
    // Let the first "everything changed" refreshes pass before watching.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_added = rss_bytes(pid).unwrap_or(0) as i64 - rss_before as i64;
    let idle = cpu_over(pid, WATCH).await;
    let fetched_before = fetches.load(Ordering::Relaxed);
    let cpu_before = server_cpu::of_process(pid).unwrap_or_default();
    let flow_start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while flow_start.elapsed() < WATCH {
        tick.tick().await;
        client
            .enqueue_batch(&BatchEnqueueRequest {
                jobs: (0..FLOW_PER_S / 10)
                    .map(|_| EnqueueRequest {
                        queue: Some("flow".into()),
                        ..EnqueueRequest::new("noop")
                    })
                    .collect(),
            })
            .await?;
    }
    let busy = server_cpu::of_process(pid)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    let busy_secs = flow_start.elapsed().as_secs_f64();
    let fetched = fetches.load(Ordering::Relaxed) - fetched_before;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(TabCost {
        rss_added,
        idle_ms_per_s: idle.as_secs_f64() * 1000.0 / WATCH.as_secs_f64(),
        busy_ms_per_s: busy.as_secs_f64() * 1000.0 / busy_secs,
        fetches_per_s: fetched as f64 / busy_secs,
    })
}
