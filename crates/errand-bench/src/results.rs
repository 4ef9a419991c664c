//! Returning results: enqueue-to-result latency seen by a caller waiting on
//! `GET /v1/jobs/{id}?wait=`, at a steady rate; the server memory and CPU of 10,000 waiting
//! callers and of 10,000 open event streams; end-to-end throughput with one webhook
//! subscription active against the same run without.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_api::{BatchEnqueueRequest, ClaimRequest, EnqueueRequest, SettleRequest};
use errand_client::Client;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::stats::{histogram, Figures};

/// Workers completing jobs; several so a claim is always outstanding.
const WORKERS: usize = 4;
/// How long the idle CPU of held waiters or streams is watched.
const IDLE_WATCH: Duration = Duration::from_secs(5);

/// Enqueue-to-result: one job every 1/rate seconds, each followed at once by a
/// `?wait=30s` read of it; latency from just before the enqueue is sent until the wait
/// answers with the job succeeded.
pub async fn to_result(nodes: &[Client], rate: u32, duration: Duration) -> anyhow::Result<Figures> {
    let client = nodes.first().ok_or_else(|| anyhow::anyhow!("no node"))?;
    let total = (u64::from(rate) * duration.as_millis() as u64 / 1000).max(1);
    let done = Arc::new(AtomicU64::new(0));
    let workers = complete_jobs(nodes, "to-result", total, done.clone());
    let hist = Arc::new(Mutex::new(histogram()));
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..total {
        ticker.tick().await;
        // Callers spread over the nodes: on several nodes a result often ends elsewhere.
        let c = nodes[callers.len() % nodes.len()].clone();
        let producer = client.clone();
        let hist = hist.clone();
        callers.spawn(async move {
            let sent = Instant::now();
            let job = producer
                .enqueue(&EnqueueRequest {
                    queue: Some("to-result".into()),
                    ..EnqueueRequest::new("noop")
                })
                .await?;
            let ended = c.job(job.id, Some("30s")).await?;
            anyhow::ensure!(
                ended.state == errand_core::JobState::Succeeded,
                "job {} is {:?} after waiting",
                ended.id,
                ended.state
            );
            hist.lock()
                .await
                .saturating_record(sent.elapsed().as_micros() as u64);
            anyhow::Ok(())
        });
    }
    while let Some(r) = callers.join_next().await {
        r??;
    }
    for w in workers {
        w.await??;
    }
    let h = hist.lock().await.clone();
    Ok(Figures {
        jobs: total,
        elapsed: start.elapsed(),
        latency: Some(h),
        cpu: Default::default(),
    })
}

/// HTTP workers claiming from `queue` and completing what they get, until `total` jobs are
/// done.
fn complete_jobs(
    nodes: &[Client],
    queue: &'static str,
    total: u64,
    done: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    (0..WORKERS)
        .map(|w| {
            let c = nodes[w % nodes.len()].clone();
            let done = done.clone();
            tokio::spawn(async move {
                let claim = ClaimRequest {
                    worker: Some(format!("results-{w}")),
                    max: Some(500),
                    wait_ms: Some(200),
                    lease_ms: Some(60_000),
                    kinds: vec![],
                    ..Default::default()
                };
                while done.load(Ordering::Relaxed) < total {
                    let got = c.claim(queue, &claim).await?;
                    if got.jobs.is_empty() {
                        continue;
                    }
                    c.settle(&SettleRequest::complete_all(&got.jobs)).await?;
                    done.fetch_add(got.jobs.len() as u64, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect()
}

/// Resident memory of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `host:port` of an `http://` base URL.
pub(crate) fn authority(base: &str) -> anyhow::Result<String> {
    Ok(base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("only http:// servers can be benchmarked"))?
        .trim_end_matches('/')
        .to_string())
}

/// Opens a connection and sends one GET that the server answers slowly (a long poll or a
/// stream); the connection closes when the answer ends.
pub(crate) async fn open_get(authority: &str, path: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(authority).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}

/// What holding many slow requests open cost the server.
pub struct HeldCost {
    /// How many were held.
    pub held: usize,
    /// Server resident memory added while they were open, bytes.
    pub rss_added: i64,
    /// Server CPU per second while they were open and nothing happened.
    pub idle_cpu_per_s: Duration,
    /// Time from the start of the work that ends them until the last one answered.
    pub release: Duration,
    /// Server CPU used while releasing them, per request.
    pub release_cpu_each: Duration,
}

impl HeldCost {
    /// Prints the figures under `name`.
    pub fn print(&self, name: &str) {
        println!(
            "{name:<40} {} held: server memory +{:.1} MiB ({:.1} KiB each), idle CPU {:.1} ms/s; \
             all released within {:.2}s, server CPU {:.0} µs each",
            self.held,
            self.rss_added as f64 / 1048576.0,
            self.rss_added as f64 / 1024.0 / self.held.max(1) as f64,
            self.idle_cpu_per_s.as_secs_f64() * 1000.0,
            self.release.as_secs_f64(),
            self.release_cpu_each.as_secs_f64() * 1e6,
        );
    }
}

/// Server CPU of `pid` over `watch`.
pub(crate) async fn cpu_over(pid: u32, watch: Duration) -> Duration {
    let before = super::server_cpu::of_process(pid).unwrap_or_default();
    tokio::time::sleep(watch).await;
    super::server_cpu::of_process(pid)
        .unwrap_or_default()
        .saturating_sub(before)
}

/// Waits until `count` reaches `want`, or gives up after `limit`.
pub(crate) async fn reach(count: &AtomicU64, want: u64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while count.load(Ordering::Relaxed) < want {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {want} within {limit:?}",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// `n` callers wait on `n` jobs nobody works yet (`?wait=60s`); after the idle watch,
/// workers complete the jobs and every waiter must hear its result.
pub async fn waiters(client: &Client, pid: u32, n: usize) -> anyhow::Result<HeldCost> {
    let auth = authority(client.base_url())?;
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let out = client
            .enqueue_batch(&BatchEnqueueRequest {
                jobs: chunk
                    .iter()
                    .map(|_| EnqueueRequest {
                        queue: Some("held".into()),
                        ..EnqueueRequest::new("noop")
                    })
                    .collect(),
            })
            .await?;
        ids.extend(out.jobs.iter().map(|j| j.id));
    }
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let answered = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let auth = auth.clone();
        let answered = answered.clone();
        let opened = opened.clone();
        tasks.spawn(async move {
            let mut stream = open_get(&auth, &format!("/v1/jobs/{id}?wait=60s")).await?;
            opened.fetch_add(1, Ordering::Relaxed);
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            anyhow::ensure!(
                answer.starts_with(b"HTTP/1.1 200") && memchr_succeeded(&answer),
                "a waiter heard: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            );
            answered.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok(())
        });
    }
    reach(&opened, n as u64, Duration::from_secs(60)).await?;
    // Let the server take every request in before measuring it at rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_added = rss_bytes(pid).unwrap_or(0) as i64 - rss_before as i64;
    let idle = cpu_over(pid, IDLE_WATCH).await;
    let cpu_before = super::server_cpu::of_process(pid).unwrap_or_default();
    let start = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let workers = complete_jobs(std::slice::from_ref(client), "held", n as u64, done);
    reach(&answered, n as u64, Duration::from_secs(120)).await?;
    let release = start.elapsed();
    let cpu = super::server_cpu::of_process(pid)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    for w in workers {
        w.await??;
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(HeldCost {
        held: n,
        rss_added,
        idle_cpu_per_s: idle.div_f64(IDLE_WATCH.as_secs_f64()),
        release,
        release_cpu_each: cpu.div_f64(n.max(1) as f64),
    })
}

/// Whether an answer's body says the job succeeded.
fn memchr_succeeded(answer: &[u8]) -> bool {
    answer
        .windows(b"\"succeeded\"".len())
        .any(|w| w == b"\"succeeded\"")
}

/// `n` clients follow `GET /v1/events?queue=streamed`; after the idle watch, `events` jobs
/// are enqueued there in one batch and every stream must receive every `job.enqueued`.
/// The release figures are per event delivered to one stream.
pub async fn streams(
    client: &Client,
    pid: u32,
    n: usize,
    events: usize,
) -> anyhow::Result<HeldCost> {
    let auth = authority(client.base_url())?;
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let opened = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let auth = auth.clone();
        let opened = opened.clone();
        let received = received.clone();
        tasks.spawn(async move {
            let stream = open_get(&auth, "/v1/events?queue=streamed&type=job.enqueued").await?;
            let mut lines = BufReader::new(stream).lines();
            let status = lines.next_line().await?.unwrap_or_default();
            anyhow::ensure!(
                status.starts_with("HTTP/1.1 200"),
                "stream refused: {status}"
            );
            opened.fetch_add(1, Ordering::Relaxed);
            let mut seen = 0;
            while seen < events {
                let Some(line) = lines.next_line().await? else {
                    anyhow::bail!("a stream ended after {seen} events");
                };
                if line.starts_with("event: job.enqueued") {
                    seen += 1;
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        });
    }
    reach(&opened, n as u64, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_added = rss_bytes(pid).unwrap_or(0) as i64 - rss_before as i64;
    let idle = cpu_over(pid, IDLE_WATCH).await;
    let cpu_before = super::server_cpu::of_process(pid).unwrap_or_default();
    let start = Instant::now();
    client
        .enqueue_batch(&BatchEnqueueRequest {
            jobs: (0..events)
                .map(|_| EnqueueRequest {
                    queue: Some("streamed".into()),
                    ..EnqueueRequest::new("noop")
                })
                .collect(),
        })
        .await?;
    let want = (n * events) as u64;
    reach(&received, want, Duration::from_secs(300)).await?;
    let release = start.elapsed();
    let cpu = super::server_cpu::of_process(pid)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(HeldCost {
        held: n,
        rss_added,
        idle_cpu_per_s: idle.div_f64(IDLE_WATCH.as_secs_f64()),
        release,
        release_cpu_each: cpu.div_f64(want.max(1) as f64),
    })
}

/// A webhook receiver on loopback that answers 204 to everything and counts requests.
pub struct Sink {
    /// Its URL.
    pub url: String,
    /// Requests received.
    pub received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Starts one on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let counter = counter.clone();
                            async move {
                                use http_body_util::BodyExt;
                                let _ = req.into_body().collect().await;
                                counter.fetch_add(1, Ordering::Relaxed);
                                hyper::Response::builder()
                                    .status(204)
                                    .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            url,
            received,
            task,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes `url` to `job.succeeded` of every job.
pub async fn subscribe(client: &Client, url: &str) -> anyhow::Result<()> {
    let mut conn = super::raw_http::RawConnection::connect(client.base_url()).await?;
    let body = serde_json::json!({ "url": url, "events": ["job.succeeded"] });
    let status = conn
        .post("/v1/subscriptions", body.to_string().into())
        .await?;
    anyhow::ensure!(status == 201, "creating the subscription answered {status}");
    Ok(())
}
