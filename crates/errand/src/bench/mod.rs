//! `errand bench`: starts a server on a fresh data directory (or uses `--server-url`) and
//! measures no-op jobs: single enqueue from 1 and 64 clients, batched enqueue, end-to-end
//! throughput with HTTP workers, and enqueue-to-start latency at a steady rate.

mod end_to_end;
mod enqueue;
mod latency;
mod raw_http;
mod stats;

use std::time::Duration;

use clap::{Args, ValueEnum};
use errand_client::Client;
use errand_testkit::ServerProcess;

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
    /// Steady rate of the latency scenario, jobs per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Use this running server instead of starting one per scenario.
    #[arg(long)]
    pub server_url: Option<String>,
}

/// A server for one scenario: started fresh unless the user named one.
async fn server(args: &BenchArgs) -> anyhow::Result<(Client, Option<ServerProcess>)> {
    if let Some(url) = &args.server_url {
        return Ok((Client::new(url)?, None));
    }
    let exe = std::env::current_exe()?;
    let proc = ServerProcess::start(&exe).await?;
    Ok((proc.client()?, Some(proc)))
}

/// Runs the chosen scenarios and prints their figures.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let duration = errand_core::duration::parse("duration", &args.duration)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let all = args.scenario == Scenario::All;
    println!(
        "errand bench: {} cores, durable acknowledgements (SQLite WAL, synchronous=FULL)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    if all || args.scenario == Scenario::Enqueue1 {
        let (c, _p) = server(&args).await?;
        enqueue::single(&c, 1, duration)
            .await?
            .print("enqueue, 1 client");
    }
    if all || args.scenario == Scenario::Enqueue64 {
        let (c, _p) = server(&args).await?;
        enqueue::single(&c, 64, duration)
            .await?
            .print("enqueue, 64 clients");
    }
    if all || args.scenario == Scenario::Batch {
        let (c, _p) = server(&args).await?;
        enqueue::batched(&c, 1000, 4, duration)
            .await?
            .print("batched enqueue, 1000/call, 4 clients");
    }
    if all || args.scenario == Scenario::EndToEnd {
        let (c, _p) = server(&args).await?;
        end_to_end::run(&c, args.jobs)
            .await?
            .print("end-to-end, HTTP workers");
    }
    if all || args.scenario == Scenario::Latency {
        let (c, _p) = server(&args).await?;
        latency::run(&c, args.rate, duration.max(Duration::from_secs(1)))
            .await?
            .print(&format!("enqueue-to-start at {} jobs/s", args.rate));
    }
    Ok(())
}
