//! The `errand` binary: the server and the CLI over its API.

mod cli;
mod commands;
mod output;
mod serve;
mod settings;
mod store_open;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// mimalloc: a server allocates and frees small buffers for every request; measured here it
/// cut the cost of an enqueue noticeably against the system allocator (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing() {
    let filter = EnvFilter::try_from_env("ERRAND_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = || errand_client::Client::new(&cli.server);
    match cli.command {
        Command::Serve(ref args) => {
            init_tracing();
            serve::run(settings::Settings::resolve(args)?).await
        }
        Command::Enqueue(args) => commands::enqueue::run(&client()?, args, cli.json).await,
        Command::Jobs(cmd) => commands::jobs::run(&client()?, cmd, cli.json).await,
        Command::Queues(cmd) => commands::queues::run(&client()?, cmd, cli.json).await,
        Command::Dead(cmd) => commands::dead::run(&client()?, cmd, cli.json).await,
        Command::Schedules(cmd) => commands::schedules::run(&client()?, cmd, cli.json).await,
        Command::Definitions(cmd) => commands::definitions::run(&client()?, cmd, cli.json).await,
        Command::Run(args) => commands::definitions::run_now(&client()?, args, cli.json).await,
        Command::Logs(args) => commands::definitions::logs(&client()?, args, cli.json).await,
        Command::Worker(args) => {
            init_tracing();
            commands::worker::run(&cli.server, args).await
        }
        Command::Export(args) => commands::transfer::export(args).await,
        Command::Import(args) => commands::transfer::import(args).await,
    }
}
