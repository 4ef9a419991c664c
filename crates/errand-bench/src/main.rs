//! `errand-bench`: starts real `errand serve` processes on a fresh data directory (or uses
//! `--server-url`) and measures no-op jobs: single enqueue from 1 and 64 clients, batched
//! enqueue, end-to-end throughput with HTTP workers, enqueue-to-start latency at a steady
//! rate, and schedule firing lateness.
//!
//! A binary of its own so that the shipping `errand` binary carries neither the test kit
//! nor the benchmark's dependencies. Build both with `cargo build --release`; the benchmark
//! runs the `errand` binary beside it unless `--errand-bin` names another.

mod dashboard_pages;
mod end_to_end;
mod enqueue;
mod floor;
mod flows;
mod idle;
mod latency;
mod list_reads;
mod metrics_scrape;
mod ordering;
mod raw_http;
mod results;
mod scale;
mod schedule_burst;
mod schedules;
mod scripts;
mod server_cpu;
mod stats;
mod worker_cycle;
mod worker_library;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use errand_client::Client;
use errand_testkit::{PgSchema, ServerProcess};

/// Which measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every scenario, each on its own fresh server.
    All,
    /// Single-job enqueue from one client.
    Enqueue1,
    /// Single-job enqueue from 64 concurrent clients.
    Enqueue64,
    /// Batched enqueue, 1,000 jobs per call.
    Batch,
    /// Enqueue and work jobs with HTTP workers claiming and settling in batches.
    EndToEnd,
    /// Enqueue-to-start latency at a steady rate (four long-polling workers, each claim
    /// carrying the settlement of the jobs the previous one returned).
    Latency,
    /// Firing lateness of many every-second schedules.
    Schedules,
    /// API latency while `--schedules` schedules come due at the same instant (not part
    /// of `all`: setting up thousands of schedules takes a while).
    ScheduleBurst,
    /// Job definitions: runs per second of a trivial script against bare fork+exec, and a
    /// run printing 100,000 lines (not part of `all`).
    Scripts,
    /// Latency of the job and queue listings after loading `--jobs` jobs (not part of
    /// `all`: loading a large store takes a while).
    ListReads,
    /// Server time and CPU of `GET /metrics` on the empty store and after loading `--jobs`
    /// jobs (not part of `all`: loading a large store takes a while).
    Metrics,
    /// The dashboard on a large store: each page's server time and CPU after loading
    /// `--jobs` jobs, and the cost of `--tabs` open overview tabs (memory, idle CPU, CPU
    /// while jobs flow) (not part of `all`).
    Dashboard,
    /// Returning results: enqueue-to-result latency of waiting callers at `--rate`, the
    /// cost of `--held` waiters and of `--held` event streams, and end-to-end throughput
    /// with one webhook subscription against the same run without (not part of `all`).
    Results,
    /// Conflicts and ordering: end-to-end throughput under 1,000 lock keys, sessions of 10,
    /// a queue rate above the load and 100 fairness keys against a plain run; claim latency
    /// with `--parked` jobs parked behind one lock key and in 1,000 sessions (not part of
    /// `all`).
    Ordering,
    /// Workflows and batches: last parent's completion to child claimed over `--chains`
    /// two-step chains, `--workflows` three-step workflows end to end, and the fan-in delay
    /// of a `--workflows`-job batch (at most 10,000) (not part of `all`).
    Flows,
    /// The Rust worker library: `--jobs` no-op jobs (at most 100,000) enqueued first, then
    /// drained by raw HTTP claim/settle loops, and again by one `errand-worker` Worker at
    /// concurrency 16 (not part of `all`).
    WorkerLibrary,
    /// A worker keeping 16 jobs in flight over HTTP, one job per slot: `--jobs` jobs (at
    /// most 100,000) drained with two requests per job (settle, claim) and, on a fresh
    /// server, with one (the claim carries the settlement) (not part of `all`).
    Cycle,
    /// An idle server: its CPU per second over `--duration` (at least 60 s: the server's
    /// CPU time comes in 10 ms ticks) after a 2 s settling time (not part of `all`).
    Idle,
    /// What the machine allows before errand does any work: `GET /healthz` from 1, 16 and 64
    /// clients (the HTTP stack alone, server CPU per request), then durable commits of 1
    /// and 9 write-ahead-log frames on one thread of the benchmark (what SQLite writes for
    /// one enqueue), CPU per commit; with `--store postgres://...` also a prepared `SELECT 1`
    /// and a durable one-row insert from 1 and 16 connections, the machine's CPU per
    /// statement (PostgreSQL's and the benchmark's) (not part of `all`).
    Floor,
    /// How costs grow with the store's size: single enqueue, a 16-in-flight claim-1 worker,
    /// queue counts and server memory on an empty store and with a backlog of a tenth of
    /// `--jobs` and of `--jobs` ready jobs, then the time to the first claim after a
    /// `kill -9` restart (not part of `all`: growing the backlog takes a while).
    Scale,
}

/// `errand-bench` flags.
#[derive(Debug, Parser)]
#[command(
    name = "errand-bench",
    version,
    about = "Measures a real errand server"
)]
pub struct BenchArgs {
    /// The `errand` binary to start (default: the one beside this benchmark).
    #[arg(long)]
    pub errand_bin: Option<std::path::PathBuf>,
    /// Which measurement.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// How long each timed scenario runs.
    #[arg(long, default_value = "5s")]
    pub duration: String,
    /// Jobs in the end-to-end, list-reads and metrics scenarios.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Schedules in the schedules scenario, each firing every second.
    #[arg(long, default_value_t = 1000)]
    pub schedules: usize,
    /// Steady rate of the latency scenario, jobs per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Use this running server instead of starting one per scenario.
    #[arg(long, conflicts_with = "store")]
    pub server_url: Option<String>,
    /// Run the servers on this store, e.g. `postgres://postgres@127.0.0.1:5432/test` (each
    /// scenario gets a fresh schema, dropped afterwards). Default: a fresh SQLite file.
    #[arg(long)]
    pub store: Option<String>,
    /// Runs at once in the scripts scenario (both bare and through errand).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Nodes per scenario (more than one needs `--store postgres://...`); load is spread
    /// over them.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Open overview tabs simulated in the dashboard scenario.
    #[arg(long, default_value_t = 100)]
    pub tabs: usize,
    /// Waiting callers and open event streams held in the results scenario.
    #[arg(long, default_value_t = 10_000)]
    pub held: usize,
    /// Parked jobs in the claim-latency parts of the ordering scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub parked: usize,
    /// Two-step chains timed in the flows scenario.
    #[arg(long, default_value_t = 1000)]
    pub chains: usize,
    /// Workflows run end to end, and jobs in the batch, in the flows scenario.
    #[arg(long, default_value_t = 10_000)]
    pub workflows: usize,
}

/// The webhook secret of the results scenario's servers (any `whsec_` key works).
const BENCH_WEBHOOK_SECRET: &str = "whsec_ZXJyYW5kLWJlbmNoLXdlYmhvb2stc2VjcmV0LWtleSE=";

/// The servers of one scenario and what cleans up after them.
struct Deployment {
    clients: Vec<Client>,
    servers: Vec<ServerProcess>,
    /// The PostgreSQL schema the servers share, dropped with the deployment.
    schema: Option<PgSchema>,
    _dir: Option<tempfile::TempDir>,
}

impl Deployment {
    /// CPU time the servers have used so far (`None` for a server the bench did not start).
    fn server_cpu(&self) -> Option<std::time::Duration> {
        let pids: Option<Vec<u32>> = self.servers.iter().map(ServerProcess::pid).collect();
        pids.filter(|p| !p.is_empty())
            .and_then(|p| server_cpu::of_processes(&p))
    }

    /// Runs one scenario and charges it the CPU it cost: the servers', the benchmark's own
    /// and the whole machine's.
    async fn measure(
        &self,
        scenario: impl std::future::Future<Output = anyhow::Result<stats::Figures>>,
    ) -> anyhow::Result<stats::Figures> {
        let spent = |after: Option<std::time::Duration>, before: Option<std::time::Duration>| {
            after.zip(before).map(|(a, b)| a.saturating_sub(b))
        };
        let before = (
            self.server_cpu(),
            server_cpu::of_self(),
            server_cpu::of_machine(),
        );
        let mut figures = scenario.await?;
        figures.cpu = stats::CpuSpent {
            server: spent(self.server_cpu(), before.0),
            bench: spent(server_cpu::of_self(), before.1),
            machine: spent(server_cpu::of_machine(), before.2),
        };
        Ok(figures)
    }
}

/// The `errand` binary the servers run: `--errand-bin`, or `errand` beside this one.
fn errand_binary(args: &BenchArgs) -> anyhow::Result<std::path::PathBuf> {
    if let Some(bin) = &args.errand_bin {
        return Ok(bin.clone());
    }
    let here = std::env::current_exe().context("cannot find this benchmark's own path")?;
    let beside = here.with_file_name(format!("errand{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        beside.is_file(),
        "no errand binary at {}: run `cargo build --release` first, or pass --errand-bin",
        beside.display()
    );
    Ok(beside)
}

/// Fresh servers for one scenario, unless the user named one.
async fn deploy(args: &BenchArgs) -> anyhow::Result<Deployment> {
    deploy_with(args, &[]).await
}

/// Fresh servers started with extra `serve` flags, unless the user named one.
async fn deploy_with(args: &BenchArgs, extra: &[&str]) -> anyhow::Result<Deployment> {
    if let Some(url) = &args.server_url {
        return Ok(Deployment {
            clients: vec![Client::new(url)?],
            servers: vec![],
            schema: None,
            _dir: None,
        });
    }
    let exe = errand_binary(args)?;
    let Some(store) = &args.store else {
        anyhow::ensure!(
            args.nodes == 1,
            "several nodes need a shared store: --store postgres://..."
        );
        let dir = tempfile::tempdir()?;
        let server = ServerProcess::start_in(&exe, dir.path(), extra).await?;
        return Ok(Deployment {
            clients: vec![server.client()?],
            servers: vec![server],
            schema: None,
            _dir: Some(dir),
        });
    };
    std::env::set_var("ERRAND_TEST_POSTGRES_URL", store);
    let schema = PgSchema::create("bench")
        .await
        .ok_or_else(|| anyhow::anyhow!("PostgreSQL at {store} is unreachable"))?;
    let mut servers = Vec::new();
    for _ in 0..args.nodes.max(1) {
        let dir = tempfile::tempdir()?;
        let mut flags = vec!["--store", store, "--pg-schema", &schema.name];
        flags.extend_from_slice(extra);
        let server = ServerProcess::start_in(&exe, dir.path(), &flags).await?;
        // The data directory is unused with PostgreSQL; it may go.
        drop(dir);
        servers.push(server);
    }
    Ok(Deployment {
        clients: servers
            .iter()
            .map(ServerProcess::client)
            .collect::<Result<_, _>>()?,
        servers,
        schema: Some(schema),
        _dir: None,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(BenchArgs::parse()).await
}

/// Runs the chosen scenarios and prints their figures.
async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let duration = errand_core::duration::parse("duration", &args.duration)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let all = args.scenario == Scenario::All;
    let store = match &args.store {
        Some(_) => format!("PostgreSQL, {} node(s)", args.nodes),
        None => "SQLite WAL, synchronous=FULL".to_string(),
    };
    println!(
        "errand-bench: {} cores, durable acknowledgements ({store})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    if all || args.scenario == Scenario::Enqueue1 {
        let d = deploy(&args).await?;
        d.measure(enqueue::single(&d.clients, 1, duration))
            .await?
            .print("enqueue, 1 client");
    }
    if all || args.scenario == Scenario::Enqueue64 {
        let d = deploy(&args).await?;
        d.measure(enqueue::single(&d.clients, 64, duration))
            .await?
            .print("enqueue, 64 clients");
    }
    if all || args.scenario == Scenario::Batch {
        let d = deploy(&args).await?;
        d.measure(enqueue::batched(&d.clients, 1000, 4, duration))
            .await?
            .print("batched enqueue, 1000/call, 4 clients");
    }
    if all || args.scenario == Scenario::EndToEnd {
        let d = deploy(&args).await?;
        d.measure(end_to_end::run(&d.clients, args.jobs))
            .await?
            .print("end-to-end, HTTP workers");
    }
    if all || args.scenario == Scenario::Latency {
        let d = deploy(&args).await?;
        d.measure(latency::run(
            &d.clients,
            args.rate,
            duration.max(Duration::from_secs(1)),
        ))
        .await?
        .print(&format!("enqueue-to-start at {} jobs/s", args.rate));
    }
    if all || args.scenario == Scenario::Schedules {
        let d = deploy(&args).await?;
        d.measure(schedules::run(
            &d.clients,
            args.schedules,
            duration.max(Duration::from_secs(1)),
        ))
        .await?
        .print(&format!(
            "firing lateness, {} schedules every 1s",
            args.schedules
        ));
    }
    if args.scenario == Scenario::ScheduleBurst {
        let d = deploy(&args).await?;
        schedule_burst::run(
            &d.clients,
            args.schedules,
            duration.max(Duration::from_secs(10)),
        )
        .await?
        .print();
    }
    if args.scenario == Scenario::Scripts {
        scripts::run(
            &errand_binary(&args)?,
            args.jobs.min(20_000),
            args.concurrency,
        )
        .await?;
    }
    if args.scenario == Scenario::ListReads {
        let d = deploy(&args).await?;
        list_reads::run(&d.clients, args.jobs, duration).await?;
    }
    if args.scenario == Scenario::Metrics {
        let d = deploy(&args).await?;
        metrics_scrape::run(&d.clients[0], args.jobs, duration, &|| d.server_cpu()).await?;
    }
    if args.scenario == Scenario::Dashboard {
        let d = deploy(&args).await?;
        let pid = d.servers.first().and_then(ServerProcess::pid);
        dashboard_pages::run(&d.clients[0], pid, args.jobs, args.tabs, duration, &|| {
            d.server_cpu()
        })
        .await?;
    }
    if args.scenario == Scenario::Results {
        run_results(&args, duration).await?;
    }
    if args.scenario == Scenario::Ordering {
        run_ordering(&args).await?;
    }
    if args.scenario == Scenario::Flows {
        run_flows(&args).await?;
    }
    if args.scenario == Scenario::WorkerLibrary {
        let jobs = args.jobs.min(100_000);
        let d = deploy(&args).await?;
        worker_library::fill(&d.clients[0], worker_library::QUEUE, jobs).await?;
        d.measure(worker_library::raw(&d.clients[0], jobs))
            .await?
            .print("drain, raw HTTP workers (8 x claim 500)");
        drop(d);
        let d = deploy(&args).await?;
        worker_library::fill(&d.clients[0], worker_library::QUEUE, jobs).await?;
        d.measure(worker_library::library(&d.clients[0], jobs))
            .await?
            .print(&format!(
                "drain, errand-worker at concurrency {}",
                worker_library::CONCURRENCY
            ));
    }
    if args.scenario == Scenario::Floor {
        let d = deploy(&args).await?;
        for clients in [1, 16, 64] {
            d.measure(floor::http(&d.clients, clients, duration))
                .await?
                .print_per(
                    &format!("floor: GET /healthz, {clients} client(s)"),
                    "request",
                );
        }
        for frames in [1, 9] {
            floor::disk(frames, duration).await?.print_per(
                &format!(
                    "floor: commit of {frames} log frame(s) + fdatasync (this machine's disk)"
                ),
                "commit",
            );
        }
        if let Some(schema) = &d.schema {
            for clients in [1, 16] {
                d.measure(floor::postgres_round_trip(&schema.url, clients, duration))
                    .await?
                    .print_per(
                        &format!("floor: PostgreSQL SELECT 1, {clients} connection(s)"),
                        "statement",
                    );
            }
            floor::postgres_table(schema).await?;
            for clients in [1, 16] {
                d.measure(floor::postgres_commit(schema, clients, duration))
                    .await?
                    .print_per(
                        &format!("floor: PostgreSQL insert + commit, {clients} connection(s)"),
                        "commit",
                    );
            }
        }
    }
    if args.scenario == Scenario::Scale {
        let mut d = deploy(&args).await?;
        scale::run(&mut d, args.jobs, duration).await?;
    }
    if args.scenario == Scenario::Cycle {
        let jobs = args.jobs.min(100_000);
        for (cycle, name) in [
            (worker_cycle::Cycle::TwoCalls, "settle, then claim"),
            (
                worker_cycle::Cycle::OneCall,
                "claim carrying the settlement",
            ),
        ] {
            let d = deploy(&args).await?;
            worker_library::fill(&d.clients[0], worker_cycle::QUEUE, jobs).await?;
            d.measure(worker_cycle::run(&d.clients[0], jobs, cycle))
                .await?
                .print(&format!(
                    "drain, {} in flight, claim 1, {name}",
                    worker_cycle::SLOTS
                ));
        }
    }
    if args.scenario == Scenario::Idle {
        let d = deploy(&args).await?;
        idle::run(&d, duration.max(idle::MIN_DURATION)).await?;
    }
    Ok(())
}

/// The flows scenario: each part on fresh servers.
async fn run_flows(args: &BenchArgs) -> anyhow::Result<()> {
    let d = deploy(args).await?;
    d.measure(flows::release_latency(&d.clients, args.chains))
        .await?
        .print(&format!(
            "flows: {} two-step chains (latency = parent completed -> child claimed; rate, CPU include creating them)",
            args.chains
        ));
    drop(d);
    let d = deploy(args).await?;
    d.measure(flows::workflows_end_to_end(&d.clients, args.workflows))
        .await?
        .print(&format!(
            "flows: {} three-step workflows end to end (rate, CPU per workflow)",
            args.workflows
        ));
    drop(d);
    let d = deploy(args).await?;
    let size = args.workflows.clamp(2, errand_core::limits::MAX_BATCH);
    d.measure(flows::batch_fan_in(&d.clients, size, 3))
        .await?
        .print(&format!(
            "flows: 3 batches of {size} (rate, CPU per batch job; latency = fan-in)"
        ));
    Ok(())
}

/// The ordering scenario: each part on fresh servers.
async fn run_ordering(args: &BenchArgs) -> anyhow::Result<()> {
    let rate = |f: &stats::Figures| f.jobs as f64 / f.elapsed.as_secs_f64().max(1e-9);
    // Each part runs right after an unrestricted run of its own, so that the load of a
    // shared machine, which drifts over minutes, weighs on both alike.
    for part in ordering::parts(args.jobs) {
        let mut figures = Vec::new();
        for p in [ordering::unrestricted(), part] {
            let d = deploy(args).await?;
            let f = d
                .measure(ordering::run_part(&d.clients, &p, args.jobs))
                .await?;
            f.print(&p.name);
            figures.push(f);
        }
        println!(
            "  {:.0} % of the unrestricted throughput just before",
            100.0 * rate(&figures[1]) / rate(&figures[0]).max(1e-9)
        );
    }
    for how in [ordering::Parked::OneLock, ordering::Parked::Sessions] {
        let d = deploy(args).await?;
        ordering::prepare_parked(&d.clients, args.parked, how).await?;
        d.measure(ordering::timed_claims(&d.clients))
            .await?
            .print(&format!("claim with {} parked ({how:?})", args.parked));
    }
    Ok(())
}

/// The results scenario: each part on fresh servers.
async fn run_results(args: &BenchArgs, duration: Duration) -> anyhow::Result<()> {
    // Room for the held waiters and for the workers' own long-polling claims.
    let held = (args.held + 1000).to_string();
    let connections = (args.held * 2 + 1000).to_string();
    let roomy = [
        "--max-waiting",
        held.as_str(),
        "--max-connections",
        connections.as_str(),
    ];
    let d = deploy_with(args, &roomy).await?;
    d.measure(results::to_result(
        &d.clients,
        args.rate,
        duration.max(Duration::from_secs(1)),
    ))
    .await?
    .print(&format!("enqueue-to-result at {} jobs/s", args.rate));
    drop(d);
    for part in ["waiters", "streams"] {
        let d = deploy_with(args, &roomy).await?;
        let (client, pid) = match (
            d.clients.first(),
            d.servers.first().and_then(ServerProcess::pid),
        ) {
            (Some(c), Some(p)) => (c, p),
            _ => anyhow::bail!("the results scenario starts its own server (no --server-url)"),
        };
        if part == "waiters" {
            results::waiters(client, pid, args.held)
                .await?
                .print(&format!("{} ?wait callers", args.held));
        } else {
            results::streams(client, pid, args.held, 100)
                .await?
                .print(&format!("{} event streams, 100 events", args.held));
        }
    }
    let hooks = [
        "--webhook-secret",
        BENCH_WEBHOOK_SECRET,
        "--allow-private-callbacks",
    ];
    let base = {
        let d = deploy_with(args, &hooks).await?;
        d.measure(end_to_end::run(&d.clients, args.jobs)).await?
    };
    base.print("end-to-end, no subscription");
    let sink = results::Sink::start().await?;
    let d = deploy_with(args, &hooks).await?;
    let client = d
        .clients
        .first()
        .ok_or_else(|| anyhow::anyhow!("no node"))?;
    results::subscribe(client, &sink.url).await?;
    let with = d.measure(end_to_end::run(&d.clients, args.jobs)).await?;
    with.print("end-to-end, 1 subscription (job.succeeded)");
    let rate = |f: &stats::Figures| f.jobs as f64 / f.elapsed.as_secs_f64().max(1e-9);
    let at_end = sink.received.load(std::sync::atomic::Ordering::Relaxed);
    let drained = std::time::Instant::now();
    while sink.received.load(std::sync::atomic::Ordering::Relaxed) < with.jobs
        && drained.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "  with a subscription: {:.0} % of the throughput without; {at_end} of {} deliveries \
         received by the end of the run, {} after {:.1}s more",
        100.0 * rate(&with) / rate(&base).max(1e-9),
        with.jobs,
        sink.received.load(std::sync::atomic::Ordering::Relaxed),
        drained.elapsed().as_secs_f64()
    );
    Ok(())
}
