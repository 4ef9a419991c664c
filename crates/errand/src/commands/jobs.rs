//! `errand jobs ...`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use errand_api::JobListQuery;
use errand_client::{Client, EventQuery, EventStreamItem};
use errand_core::{Job, JobId};

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
        .map_err(|e| crate::exit::usage(e.message))
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

/// How a waiting command shows a job's state and progress on stderr: one line rewritten
/// in place on a terminal, a new line per change otherwise (a log, a pipe).
struct StatusLine {
    last: String,
    terminal: bool,
}

impl StatusLine {
    fn new() -> Self {
        Self {
            last: String::new(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, job: &Job) {
        let line = match &job.progress {
            Some(p) => {
                let mut line = format!("{} {}", job.id, job.state);
                if let Some(pct) = p.percent {
                    line.push_str(&format!(" {pct:>5.1}%"));
                }
                if let Some(m) = &p.message {
                    line.push_str(&format!(" {m}"));
                }
                line
            }
            None => format!("{} {}", job.id, job.state),
        };
        if line == self.last {
            return;
        }
        if self.terminal {
            // Back to the line's start, the new text, then clear what was longer.
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        self.last = line;
    }

    fn finish(&self) {
        if self.terminal && !self.last.is_empty() {
            eprintln!();
        }
    }
}

/// Waits for a job to end, showing its state and progress meanwhile (unless `json`).
///
/// It follows the job's events, so progress shows as the worker reports it, and reads the
/// job after each one; without the stream (refused, or the server is busy) it long-polls
/// the job every two seconds instead.
pub async fn wait(
    client: &Client,
    id: JobId,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<Job> {
    let started = Instant::now();
    let mut status = StatusLine::new();
    // Subscribed before the first read: an end between the two is not missed.
    let mut events = client
        .follow_events(
            EventQuery {
                jobs: vec![id.to_string()],
                ..EventQuery::default()
            },
            None,
        )
        .await
        .ok();
    let mut job = client.job(id, None).await?;
    loop {
        if job.state.is_final() {
            if !json {
                status.finish();
            }
            return Ok(job);
        }
        if !json {
            status.show(&job);
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            if !json {
                status.finish();
            }
            return Err(crate::exit::WaitTimedOut {
                id,
                state: job.state,
                waited: errand_core::duration::format(timeout),
                because: String::new(),
            }
            .into());
        }
        let remaining = timeout - elapsed;
        job = match events.as_mut() {
            Some(follow) => {
                let step = remaining.min(Duration::from_secs(25));
                match tokio::time::timeout(step, follow.next()).await {
                    // An event, a gap, a cut-off or a drop (the follower reconnects): look.
                    Ok(Ok(EventStreamItem::Disconnected(_))) => {
                        tokio::time::sleep(Duration::from_millis(200).min(remaining)).await;
                        client.job(id, None).await?
                    }
                    Ok(Ok(_)) | Err(_) => client.job(id, None).await?,
                    Ok(Err(_)) => {
                        events = None;
                        client.job(id, None).await?
                    }
                }
            }
            None => {
                let step = remaining.min(Duration::from_secs(2));
                let ms = step.as_millis().max(1).to_string();
                client.job(id, Some(&ms)).await?
            }
        };
    }
}

/// Runs a `jobs` subcommand.
pub async fn run(client: &Client, cmd: JobsCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List { filter, state } => {
            print_page(&client.jobs(&query(&filter, state)).await?, json)
        }
        JobsCommand::Show { id: raw } => print_job(&client.job(id(&raw)?, None).await?, json),
        JobsCommand::Explain { id: raw } => {
            crate::commands::ordering::explain(client, id(&raw)?, json).await
        }
        JobsCommand::Wait { id: raw, timeout } => {
            let timeout = errand_core::duration::parse("timeout", &timeout)
                .map_err(|e| crate::exit::usage(format!("--{e}")))?;
            let job = wait(client, id(&raw)?, timeout, json).await?;
            print_job(&job, json)?;
            crate::exit::job_outcome(&job)
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
