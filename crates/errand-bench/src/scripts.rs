//! Job definitions: runs per second of a trivial script through errand against the same
//! script started bare (fork + exec + wait from this process) in the same invocation, with
//! the CPU each costs per run; and a script printing 100,000 lines, stored whole.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use errand_api::{BatchEnqueueRequest, EnqueueRequest};
use errand_client::Client;
use errand_core::JobState;
use errand_testkit::ServerProcess;

use crate::server_cpu;

fn write_script(path: &Path, body: &str) -> anyhow::Result<()> {
    std::fs::write(path, body)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A jobs directory with `trivial` (`exit 0`, `concurrency` at once) and `chatty`
/// (100,000 lines).
fn jobs_dir(concurrency: usize) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let trivial = dir.path().join("trivial");
    std::fs::create_dir_all(&trivial)?;
    std::fs::write(
        trivial.join("job.toml"),
        format!("concurrency = {concurrency}\n"),
    )?;
    // `run`, an executable started through its own `#!` line, exactly as the bare runs
    // start it (a `run.sh` would go through bash, which costs more than errand does).
    write_script(&trivial.join("run"), "#!/bin/sh\nexit 0\n")?;
    let chatty = dir.path().join("chatty");
    std::fs::create_dir_all(&chatty)?;
    std::fs::write(chatty.join("job.toml"), "")?;
    write_script(&chatty.join("run.sh"), "#!/bin/sh\nseq 1 100000\n")?;
    Ok(dir)
}

/// Server CPU including the runs it reaped.
fn server_total_cpu(pid: u32) -> Option<Duration> {
    Some(server_cpu::of_process(pid)? + server_cpu::of_children(pid)?)
}

/// One round's figures.
struct Round {
    rate: f64,
    cpu_per_run: Duration,
}

/// `runs` bare starts of the script, `concurrency` at a time.
async fn bare(script: &Path, runs: usize, concurrency: usize) -> anyhow::Result<Round> {
    let me = std::process::id();
    let before = server_total_cpu(me).context("reading this process's CPU")?;
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..runs {
        let permit = slots.clone().acquire_owned().await?;
        let script = script.to_path_buf();
        tasks.spawn(async move {
            let status = tokio::process::Command::new(&script)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await;
            drop(permit);
            status.map(|s| s.success()).unwrap_or(false)
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        if r.unwrap_or(false) {
            ok += 1;
        }
    }
    anyhow::ensure!(ok == runs, "only {ok} of {runs} bare runs succeeded");
    let elapsed = started.elapsed();
    let cpu = server_total_cpu(me).context("reading this process's CPU")? - before;
    Ok(Round {
        rate: runs as f64 / elapsed.as_secs_f64(),
        cpu_per_run: cpu / runs as u32,
    })
}

/// `runs` jobs of `trivial` through the server: enqueued in batches, run, settled.
async fn through_errand(
    server: &ServerProcess,
    client: &Client,
    runs: usize,
) -> anyhow::Result<Round> {
    let pid = server.pid().context("server pid")?;
    let before = server_total_cpu(pid).context("reading the server's CPU")?;
    let counted = |q: &errand_core::QueueInfo| (q.counts.succeeded + q.counts.dead) as usize;
    let base = match client.queue("default").await {
        Ok(q) => counted(&q),
        Err(_) => 0,
    };
    let dead_before = client
        .queue("default")
        .await
        .map(|q| q.counts.dead)
        .unwrap_or(0);
    let started = Instant::now();
    for chunk in (0..runs).collect::<Vec<_>>().chunks(1000) {
        let jobs = chunk
            .iter()
            .map(|_| {
                let mut r = EnqueueRequest::new("trivial");
                r.max_attempts = Some(1);
                r
            })
            .collect();
        client.enqueue_batch(&BatchEnqueueRequest { jobs }).await?;
    }
    loop {
        let q = client.queue("default").await?;
        if counted(&q) >= base + runs {
            anyhow::ensure!(
                q.counts.dead == dead_before,
                "{} runs died",
                q.counts.dead - dead_before
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu = server_total_cpu(pid).context("reading the server's CPU")? - before;
    Ok(Round {
        rate: runs as f64 / elapsed.as_secs_f64(),
        cpu_per_run: cpu / runs as u32,
    })
}

/// Prints the trivial-script comparison (two rounds, bare then errand each) and the
/// 100,000-line run.
pub async fn run(exe: &Path, runs: usize, concurrency: usize) -> anyhow::Result<()> {
    let jobs = jobs_dir(concurrency)?;
    let data = tempfile::tempdir()?;
    let jobs_arg = jobs.path().display().to_string();
    let server = ServerProcess::start_in(
        exe,
        data.path(),
        &["--jobs-dir", &jobs_arg, "--max-log-lines", "200000"],
    )
    .await?;
    let client = server.client()?;
    // Wait until the definitions have loaded.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .definitions()
        .await?
        .definitions
        .iter()
        .any(|d| d.name == "trivial")
    {
        anyhow::ensure!(Instant::now() < deadline, "the definitions did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let script = jobs.path().join("trivial").join("run");
    for round in 1..=2 {
        let b = bare(&script, runs, concurrency).await?;
        let e = through_errand(&server, &client, runs).await?;
        println!(
            "scripts round {round}: bare {:>6.0} runs/s {:>6} µs CPU/run | errand {:>6.0} runs/s {:>6} µs CPU/run (server + runs) | CPU ratio {:.2}",
            b.rate,
            b.cpu_per_run.as_micros(),
            e.rate,
            e.cpu_per_run.as_micros(),
            e.cpu_per_run.as_secs_f64() / b.cpu_per_run.as_secs_f64().max(1e-9),
        );
    }
    // 100,000 lines.
    let started = Instant::now();
    let job = client
        .run_definition("chatty", &errand_api::RunDefinitionRequest::default())
        .await?;
    let job = loop {
        let j = client.job(job.id, Some("5s")).await?;
        if j.state.is_final() {
            break j;
        }
    };
    let elapsed = started.elapsed();
    anyhow::ensure!(
        job.state == JobState::Succeeded,
        "chatty ended {}",
        job.state
    );
    let mut stored = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let page = client.job_logs(job.id, None, cursor.as_deref()).await?;
        stored += page.lines.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    println!(
        "scripts 100,000 lines: run to settled in {:.2}s, {stored} lines stored (bound 200,000)",
        elapsed.as_secs_f64()
    );
    Ok(())
}
