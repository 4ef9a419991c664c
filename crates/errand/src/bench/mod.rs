//! `errand bench`: starts a server on a fresh data directory (or uses `--server-url`) and
//! measures no-op jobs: single enqueue from 1 and 64 clients, batched enqueue, end-to-end
//! throughput with HTTP workers, and enqueue-to-start latency at a steady rate.

mod end_to_end;
mod enqueue;
mod latency;
mod raw_http;
mod schedule_burst;
mod schedules;
mod stats;

use std::time::Duration;

use clap::{Args, ValueEnum};
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
    /// Enqueue-to-start latency at a steady rate.
    Latency,
    /// Firing lateness of many every-second schedules.
    Schedules,
    /// API latency while `--schedules` schedules come due at the same instant (not part
    /// of `all`: setting up thousands of schedules takes a while).
    ScheduleBurst,
}

/// `errand bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which measurement.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// How long each timed scenario runs.
    #[arg(long, default_value = "5s")]
    pub duration: String,
    /// Jobs in the end-to-end scenario.
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
    /// Nodes per scenario (more than one needs `--store postgres://...`); load is spread
    /// over them.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
}

/// The servers of one scenario and what cleans up after them.
struct Deployment {
    clients: Vec<Client>,
    _servers: Vec<ServerProcess>,
    _schema: Option<PgSchema>,
}

/// Fresh servers for one scenario, unless the user named one.
async fn deploy(args: &BenchArgs) -> anyhow::Result<Deployment> {
    if let Some(url) = &args.server_url {
        return Ok(Deployment {
            clients: vec![Client::new(url)?],
            _servers: vec![],
            _schema: None,
        });
    }
    let exe = std::env::current_exe()?;
    let Some(store) = &args.store else {
        anyhow::ensure!(
            args.nodes == 1,
            "several nodes need a shared store: --store postgres://..."
        );
        let server = ServerProcess::start(&exe).await?;
        return Ok(Deployment {
            clients: vec![server.client()?],
            _servers: vec![server],
            _schema: None,
        });
    };
    std::env::set_var("ERRAND_TEST_POSTGRES_URL", store);
    let schema = PgSchema::create("bench")
        .await
        .ok_or_else(|| anyhow::anyhow!("PostgreSQL at {store} is unreachable"))?;
    let mut servers = Vec::new();
    for _ in 0..args.nodes.max(1) {
        let dir = tempfile::tempdir()?;
        let server = ServerProcess::start_in(
            &exe,
            dir.path(),
            &["--store", store, "--pg-schema", &schema.name],
        )
        .await?;
        // The data directory is unused with PostgreSQL; it may go.
        drop(dir);
        servers.push(server);
    }
    Ok(Deployment {
        clients: servers
            .iter()
            .map(ServerProcess::client)
            .collect::<Result<_, _>>()?,
        _servers: servers,
        _schema: Some(schema),
    })
}

/// Runs the chosen scenarios and prints their figures.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let duration = errand_core::duration::parse("duration", &args.duration)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let all = args.scenario == Scenario::All;
    let store = match &args.store {
        Some(_) => format!("PostgreSQL, {} node(s)", args.nodes),
        None => "SQLite WAL, synchronous=FULL".to_string(),
    };
    println!(
        "errand bench: {} cores, durable acknowledgements ({store})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    if all || args.scenario == Scenario::Enqueue1 {
        let d = deploy(&args).await?;
        enqueue::single(&d.clients, 1, duration)
            .await?
            .print("enqueue, 1 client");
    }
    if all || args.scenario == Scenario::Enqueue64 {
        let d = deploy(&args).await?;
        enqueue::single(&d.clients, 64, duration)
            .await?
            .print("enqueue, 64 clients");
    }
    if all || args.scenario == Scenario::Batch {
        let d = deploy(&args).await?;
        enqueue::batched(&d.clients, 1000, 4, duration)
            .await?
            .print("batched enqueue, 1000/call, 4 clients");
    }
    if all || args.scenario == Scenario::EndToEnd {
        let d = deploy(&args).await?;
        end_to_end::run(&d.clients, args.jobs)
            .await?
            .print("end-to-end, HTTP workers");
    }
    if all || args.scenario == Scenario::Latency {
        let d = deploy(&args).await?;
        latency::run(&d.clients, args.rate, duration.max(Duration::from_secs(1)))
            .await?
            .print(&format!("enqueue-to-start at {} jobs/s", args.rate));
    }
    if all || args.scenario == Scenario::Schedules {
        let d = deploy(&args).await?;
        schedules::run(
            &d.clients,
            args.schedules,
            duration.max(Duration::from_secs(1)),
        )
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
    Ok(())
}
