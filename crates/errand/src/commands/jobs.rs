//! `errand jobs ...`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use errand_api::JobListQuery;
use errand_client::Client;
use errand_core::{Job, JobId, JobState};

use crate::cli::{JobsCommand, ListArgs};
use crate::output;

/// Builds a listing query from flags.
pub fn query(filter: &ListArgs, state: Option<String>) -> JobListQuery {
    JobListQuery {
        queue: filter.queue.clone(),
        state,
        kind: filter.kind.clone(),
        tag: filter.tag.clone(),
        limit: Some(filter.limit),
        cursor: filter.cursor.clone(),
    }
}

fn id(raw: &str) -> anyhow::Result<JobId> {
    raw.parse::<JobId>()
        .map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// Prints a page of jobs.
pub fn print_page(page: &errand_api::JobPage, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(page);
    }
    let rows: Vec<Vec<String>> = page
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.kind.to_string(),
                j.queue.to_string(),
                j.state.to_string(),
                format!("{}/{}", j.attempt, j.max_attempts),
                output::when(Some(j.created_at)),
            ]
        })
        .collect();
    output::table(
        &["ID", "KIND", "QUEUE", "STATE", "ATTEMPT", "CREATED"],
        &rows,
    );
    if let Some(c) = page.next_cursor {
        println!("more: --cursor {c}");
    }
    Ok(())
}

/// Prints one job in detail.
pub fn print_job(job: &Job, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(job);
    }
    let mut rows = vec![
        ("id", job.id.to_string()),
        ("kind", job.kind.to_string()),
        ("queue", job.queue.to_string()),
        ("state", job.state.to_string()),
        ("attempt", format!("{}/{}", job.attempt, job.max_attempts)),
        ("priority", job.priority.to_string()),
        ("run at", output::when(Some(job.run_at))),
        ("created", output::when(Some(job.created_at))),
        ("started", output::when(job.started_at)),
        ("finished", output::when(job.finished_at)),
        ("payload", job.payload.to_string()),
    ];
    if !job.tags.is_empty() {
        rows.push(("tags", job.tags.join(", ")));
    }
    if let Some(p) = &job.progress {
        rows.push((
            "progress",
            format!(
                "{}% {}",
                p.percent.unwrap_or(0.0),
                p.message.clone().unwrap_or_default()
            ),
        ));
    }
    if let Some(r) = &job.result {
        rows.push(("result", r.to_string()));
    }
    if let Some(e) = &job.error {
        rows.push(("error", e.clone()));
    }
    for (k, v) in rows {
        println!("{k:>9}  {v}");
    }
    Ok(())
}

/// Waits for a job to end, showing its state and progress meanwhile.
pub async fn wait(
    client: &Client,
    id: JobId,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<Job> {
    let started = Instant::now();
    let mut last_line = String::new();
    loop {
        let job = client.job(id, Some("25s")).await?;
        if job.state.is_final() {
            if !json && !last_line.is_empty() {
                eprintln!();
            }
            return Ok(job);
        }
        if !json {
            let line = match &job.progress {
                Some(p) => format!(
                    "{} {} {:>5.1}% {}",
                    job.id,
                    job.state,
                    p.percent.unwrap_or(0.0),
                    p.message.clone().unwrap_or_default()
                ),
                None => format!("{} {}", job.id, job.state),
            };
            if line != last_line {
                eprint!("\r{line:<80}");
                last_line = line;
            }
        }
        if started.elapsed() >= timeout {
            bail!(
                "job {id} is still {} after {}",
                job.state,
                errand_core::duration::format(timeout)
            );
        }
    }
}

/// Runs a `jobs` subcommand.
pub async fn run(client: &Client, cmd: JobsCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List { filter, state } => {
            print_page(&client.jobs(&query(&filter, state)).await?, json)
        }
        JobsCommand::Show { id: raw } => print_job(&client.job(id(&raw)?, None).await?, json),
        JobsCommand::Wait { id: raw, timeout } => {
            let timeout = errand_core::duration::parse("timeout", &timeout)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let job = wait(client, id(&raw)?, timeout, json).await?;
            print_job(&job, json)?;
            if job.state != JobState::Succeeded {
                bail!("job {} ended {}", job.id, job.state);
            }
            Ok(())
        }
        JobsCommand::Cancel { id: raw } => print_job(&client.cancel(id(&raw)?).await?, json),
        JobsCommand::Retry { id: raw } => print_job(&client.retry(id(&raw)?).await?, json),
        JobsCommand::Deliveries { id: raw } => {
            let list = client
                .job_deliveries(id(&raw)?, 100)
                .await
                .context("reading deliveries")?;
            crate::commands::subscriptions::print_deliveries(&list, json)
        }
        JobsCommand::Attempts { id: raw } => {
            let list = client
                .attempts(id(&raw)?)
                .await
                .context("reading attempts")?;
            if json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .attempts
                .iter()
                .map(|a| {
                    vec![
                        a.attempt.to_string(),
                        a.worker.clone().unwrap_or_else(|| "-".into()),
                        output::when(Some(a.started_at)),
                        output::when(a.finished_at),
                        format!("{:?}", a.outcome).to_lowercase(),
                        a.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(
                &["#", "WORKER", "STARTED", "FINISHED", "OUTCOME", "ERROR"],
                &rows,
            );
            Ok(())
        }
    }
}
