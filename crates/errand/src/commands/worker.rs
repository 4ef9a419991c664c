//! `errand worker`: runs job definitions (or one command) on this machine for a server
//! elsewhere, over the worker protocol, with the same runtime `errand serve` uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use errand_client::{Client, HttpJobHost};
use errand_core::{JobKind, QueueName};
use errand_runner::catalog::{Catalog, CatalogSnapshot};
use errand_runner::definition::{
    Backoff, Definition, DefinitionSource, Entry, Mode, ResourceLimits, RestartPolicy,
};
use errand_runner::runner::{self, RunnerConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::WorkerArgs;

/// Runs until SIGINT or SIGTERM; runs in progress get their stop sequence and go back to
/// the queue.
pub async fn run(server: &str, token: Option<&str>, args: WorkerArgs) -> anyhow::Result<()> {
    let client = Client::new(server)
        .map(|c| match token {
            Some(t) => c.with_token(t),
            None => c,
        })
        .map_err(|e| crate::exit::usage(format!("{e} (given by --server or ERRAND_SERVER)")))?;
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    let worker = format!("errand-worker:{host_name}:{}", std::process::id());
    let host = Arc::new(HttpJobHost::new(
        client,
        worker.clone(),
        std::time::Duration::from_secs(30),
    ));
    let config = RunnerConfig::new(worker);
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        crate::serve::shutdown_signal().await;
        stop.cancel();
    });
    if !args.command.is_empty() {
        let queue = args.queue.as_deref().ok_or_else(|| {
            crate::exit::usage("`--` CMD needs --queue: the queue whose jobs the command runs")
        })?;
        let def = command_definition(&args.command, queue, args.concurrency.unwrap_or(1))?;
        let (_keep, snapshots) = tokio::sync::watch::channel(Arc::new(CatalogSnapshot {
            definitions: BTreeMap::from([(def.name.clone(), Arc::new(def))]),
            ..CatalogSnapshot::default()
        }));
        eprintln!(
            "errand worker: running `{}` for queue {queue} of {server}",
            args.command.join(" ")
        );
        runner::run(host, None, config, snapshots, token).await;
        return Ok(());
    }
    let jobs_dir = args.jobs_dir.unwrap_or_else(|| "./jobs".into());
    let (_catalog, snapshots) = Catalog::watch(jobs_dir.clone()).await;
    eprintln!(
        "errand worker: running the definitions of {} for {server}",
        jobs_dir.display()
    );
    runner::run(host, None, config, snapshots, token).await;
    Ok(())
}

/// A definition for `errand worker --queue Q -- CMD ARGS...`: every job of the queue, of
/// any kind, runs the command.
fn command_definition(
    command: &[String],
    queue: &str,
    concurrency: u32,
) -> anyhow::Result<Definition> {
    let program = which(&command[0])
        .ok_or_else(|| crate::exit::usage(format!("`{}` is not a program on PATH", command[0])))?;
    let cwd = std::env::current_dir()?;
    Ok(Definition {
        name: "command".into(),
        dir: cwd.clone(),
        source: DefinitionSource::JobToml {
            path: cwd.join("(command line)"),
        },
        mode: Mode::Triggered,
        kind: JobKind::parse("*")?,
        any_kind: true,
        queue: QueueName::parse(queue)?,
        entry: Entry {
            program,
            args: command[1..].to_vec(),
        },
        working_dir: cwd,
        env: BTreeMap::new(),
        pass_env: Vec::new(),
        secret_env: Vec::new(),
        schedule: None,
        singleton: false,
        concurrency: concurrency.max(1),
        timeout: None,
        max_attempts: 25,
        backoff: Backoff {
            base: std::time::Duration::from_secs(1),
            max: std::time::Duration::from_secs(3600),
        },
        stopping_wait_time: std::time::Duration::from_secs(5),
        restart: RestartPolicy {
            backoff: Backoff {
                base: std::time::Duration::from_secs(1),
                max: std::time::Duration::from_secs(60),
            },
            max_restarts: 10,
            window: std::time::Duration::from_secs(600),
        },
        limits: ResourceLimits::default(),
        user: None,
        watch: Vec::new(),
        hooks: Vec::new(),
    })
}

/// The program's path: as given when it has a slash, else the first match on `PATH`.
fn which(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
