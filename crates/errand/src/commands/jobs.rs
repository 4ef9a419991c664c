//! `errand jobs ...`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use errand_api::JobListQuery;
use errand_client::{Client, EventQuery, EventStreamItem};
use errand_core::explain::ReasonCode;
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

/// A job id given on the command line; anything else is a usage error (exit 2).
pub fn id(raw: &str) -> anyhow::Result<JobId> {
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
    )?;
    if let Some(c) = page.next_cursor {
        crate::outln!("more: --cursor {c}");
    }
    Ok(())
}

/// Up to `max` ids, then how many more: `A, B, C and 4 more`.
fn ids(list: &[JobId], max: usize) -> String {
    let shown: Vec<String> = list.iter().take(max).map(ToString::to_string).collect();
    match list.len().saturating_sub(max) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Why a `blocked` job cannot run yet, from what the job itself says (its parents, its
/// session); `errand jobs explain` says more.
fn blocked_reason(job: &Job) -> Option<String> {
    if job.state != JobState::Blocked {
        return None;
    }
    let flow = &job.flow;
    if flow.waiting_for > 0 {
        let needs = if flow.after_any_end {
            "to end"
        } else {
            "to succeed"
        };
        return Some(format!(
            "waiting for {} of its {} parent job(s) {needs}",
            flow.waiting_for,
            flow.after.len().max(flow.waiting_for as usize)
        ));
    }
    if let Some(key) = &job.ordering.session_key {
        return Some(format!(
            "session `{key}` waits behind another job (errand jobs explain {})",
            job.id
        ));
    }
    // Waiting for nothing: its flow stayed in another store (an import).
    Some(format!(
        "nothing will release it (errand jobs explain {})",
        job.id
    ))
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
    let flow = &job.flow;
    if let Some(wf) = flow.workflow_id {
        let step = flow.step.as_deref().unwrap_or("-");
        rows.push(("workflow", format!("{wf} step `{step}`")));
    }
    if let Some(batch) = flow.batch_id {
        rows.push(("batch", batch.to_string()));
    }
    if !flow.after.is_empty() {
        let when = if flow.after_any_end { " (any end)" } else { "" };
        rows.push(("after", format!("{}{when}", ids(&flow.after, 5))));
    }
    if flow.waiting_for > 0 && job.state != JobState::Blocked {
        rows.push(("waiting", format!("for {} of them", flow.waiting_for)));
    }
    if let Some(reason) = blocked_reason(job) {
        rows.push(("blocked", reason));
    }
    if job.parked {
        rows.push((
            "parked",
            format!(
                "waits for a place under its key (errand jobs explain {})",
                job.id
            ),
        ));
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
        crate::outln!("{k:>9}  {v}");
    }
    Ok(())
}

/// How a waiting command shows a job's state, progress and what it waits for on stderr:
/// a live line (spinner, bar, percent, message) on a terminal, a plain line per change
/// otherwise (a log, a pipe), nothing with `--json`.
struct StatusLine {
    last: String,
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl StatusLine {
    fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(100);
            bar.set_style(Self::style(false));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            last: String::new(),
            bar,
            quiet,
        }
    }

    fn style(with_bar: bool) -> indicatif::ProgressStyle {
        let template = if with_bar {
            "{spinner} {prefix} [{bar:24}] {pos:>3}% {wide_msg}"
        } else {
            "{spinner} {prefix} {wide_msg}"
        };
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
            .progress_chars("=> ")
    }

    /// Shows the job; `because` says what it waits for while it does not run.
    fn show(&mut self, job: &Job, because: Option<&str>) {
        if self.quiet {
            return;
        }
        let percent = job.progress.as_ref().and_then(|p| p.percent);
        let message = job.progress.as_ref().and_then(|p| p.message.clone());
        let mut detail = Vec::new();
        if job.state != JobState::Running {
            detail.extend(because.map(str::to_owned));
        } else if let Some(m) = &message {
            detail.push(m.clone());
        } else if percent.is_none() {
            detail.push(format!("attempt {}/{}", job.attempt, job.max_attempts));
            detail.extend(job.worker.as_ref().map(|w| format!("on worker `{w}`")));
        }
        let detail = detail.join(" ");
        let prefix = format!("{} {}", job.id, job.state);
        let line = match (percent, job.state) {
            (Some(pct), JobState::Running) => format!("{prefix} {pct:.1}% {detail}"),
            (_, JobState::Running) => format!("{prefix} {detail}"),
            _ if detail.is_empty() => prefix.clone(),
            _ => format!("{prefix} — {detail}"),
        };
        let line = line.trim_end().to_string();
        if line == self.last {
            return;
        }
        match &self.bar {
            Some(bar) => {
                let running_pct = percent.filter(|_| job.state == JobState::Running);
                bar.set_style(Self::style(running_pct.is_some()));
                // The id too: `enqueue --wait` and `run --wait` show it nowhere else.
                bar.set_prefix(prefix.clone());
                if let Some(pct) = running_pct {
                    bar.set_position(pct.clamp(0.0, 100.0).round() as u64);
                }
                if job.state == JobState::Running || detail.is_empty() {
                    bar.set_message(detail);
                } else {
                    bar.set_message(format!("— {detail}"));
                }
            }
            None => eprintln!("{line}"),
        }
        self.last = line;
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        self.finish();
    }
}

/// How often the reason a job waits is read again while its state stays the same (a
/// worker may come, a lock may free).
const REASON_REFRESH: Duration = Duration::from_secs(10);

/// How long past its deadline a wait may still ask what the job waits for, once.
const REASON_GRACE: Duration = Duration::from_secs(1);

/// Longest a followed stream is trusted without a look at the job itself.
const STREAM_RECHECK: Duration = Duration::from_secs(25);

/// What a job that does not run waits for, in words: its parents, its queue's workers,
/// its lock, its `run_at` (from `GET /v1/jobs/{id}/explain`). Bounded by `deadline`;
/// `None` when the server could not say in time.
async fn because(client: &Client, job: &Job, deadline: Instant) -> Option<String> {
    if job.state == JobState::Blocked && job.flow.waiting_for > 0 {
        // Name the parents that have not ended yet (a few of them), with their states.
        // The first five that have not ended, past any that have; the rest are counted.
        let mut open = Vec::new();
        for parent in &job.flow.after {
            if open.len() == 5 {
                break;
            }
            match tokio::time::timeout_at(deadline.into(), client.job(*parent, None)).await {
                Ok(Ok(p)) if p.state.is_final() => {}
                Ok(Ok(p)) => open.push(format!("{} ({})", p.id, p.state)),
                _ => open.push(parent.to_string()),
            }
        }
        let waiting = usize::try_from(job.flow.waiting_for).unwrap_or(usize::MAX);
        let more = if open.is_empty() {
            0
        } else {
            waiting.saturating_sub(open.len())
        };
        let mut text = match open.len() {
            // Every parent read has ended since the job was read: it is about to move.
            0 => format!("waiting for {waiting} parent job(s) to end"),
            1 => format!("waiting for job {}", open[0]),
            _ => format!("waiting for jobs {}", open.join(", ")),
        };
        if more > 0 {
            text.push_str(&format!(" (and {more} more)"));
        }
        return Some(text);
    }
    let explained = tokio::time::timeout_at(deadline.into(), client.explain(job.id))
        .await
        .ok()?
        .ok()?;
    let summary = explained
        .reasons
        .iter()
        .map(|r| match (r.code, r.until) {
            (ReasonCode::RunAtFuture, Some(at)) => format!(
                "scheduled for {} UTC ({})",
                output::when(Some(at)),
                output::relative(at)
            ),
            _ => r.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some(match job.state {
        // "no worker has asked for queue `mail` ..." names the queue already.
        JobState::Available if !summary.contains(&format!("`{}`", job.queue)) => {
            format!("in queue `{}`: {summary}", job.queue)
        }
        _ => summary,
    })
}

/// Reads the job, within `deadline`; `None` when the deadline came first.
async fn read(
    client: &Client,
    id: JobId,
    long_poll: Option<&str>,
    deadline: Instant,
) -> anyhow::Result<Option<Job>> {
    match tokio::time::timeout_at(deadline.into(), client.job(id, long_poll)).await {
        Ok(job) => Ok(Some(job?)),
        Err(_) => Ok(None),
    }
}

/// Waits for a job to end, showing its state, progress and what it waits for meanwhile
/// (nothing with `json`), for at most `timeout`.
///
/// It follows the job's events, so progress shows as the worker reports it, and reads the
/// job after each one; without the stream (refused, or the server is busy) it long-polls
/// the job every two seconds instead. Every call to the server is bounded by the
/// deadline, so the timeout holds to the second whatever the server does.
///
/// # Errors
/// [`crate::exit::WaitTimedOut`] when the timeout passes first (with what the job waits
/// for); the server's refusal or a transport failure.
pub async fn wait(
    client: &Client,
    id: JobId,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<Job> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut status = StatusLine::new(json);
    // Subscribed before the first read: an end between the two is not missed.
    let mut events = tokio::time::timeout_at(
        deadline.into(),
        client.follow_events(
            EventQuery {
                jobs: vec![id.to_string()],
                ..EventQuery::default()
            },
            None,
        ),
    )
    .await
    .ok()
    .and_then(Result::ok);
    // The first read gets a second even under a shorter timeout: without it there is no
    // state to report.
    let first_by = deadline.max(started + Duration::from_secs(1));
    let mut job = match read(client, id, None, first_by).await? {
        Some(job) => job,
        None => {
            return Err(errand_client::ClientError::Transport {
                url: client.base_url().to_string(),
                cause: format!(
                    "no answer within {}",
                    errand_core::duration::format(first_by - started)
                ),
            }
            .into())
        }
    };
    // What the job waits for, the state it was read for, and when.
    let mut reason: Option<(String, JobState, Instant)> = None;
    loop {
        if job.state.is_final() {
            status.finish();
            return Ok(job);
        }
        let now = Instant::now();
        if job.state == JobState::Running {
            reason = None;
        } else {
            let stale = match &reason {
                Some((_, state, at)) => *state != job.state || now - *at >= REASON_REFRESH,
                None => true,
            };
            // Past the deadline too, once and briefly: a timeout says what the job waits for.
            let by = if now < deadline {
                Some(deadline)
            } else {
                let current = matches!(&reason, Some((_, state, _)) if *state == job.state);
                (!current).then(|| now + REASON_GRACE)
            };
            if let (true, Some(by)) = (stale, by) {
                if let Some(text) = because(client, &job, by).await {
                    reason = Some((text, job.state, Instant::now()));
                }
            }
        }
        let because_text = reason.as_ref().map(|(t, _, _)| t.as_str());
        status.show(&job, because_text);
        let now = Instant::now();
        if now >= deadline {
            status.finish();
            return Err(crate::exit::WaitTimedOut {
                id,
                state: job.state,
                waited: errand_core::duration::format(timeout),
                because: because_text.map(|t| format!(" — {t}")).unwrap_or_default(),
            }
            .into());
        }
        // Look again at the latest by the next reason refresh (a job that waits) or the
        // stream recheck (a running one), and never past the deadline.
        let step = if job.state == JobState::Running {
            STREAM_RECHECK
        } else {
            REASON_REFRESH
        };
        let until = deadline.min(now + step);
        let next = match events.as_mut() {
            Some(follow) => {
                match tokio::time::timeout_at(until.into(), follow.next()).await {
                    // An event, a gap, a cut-off or a drop (the follower reconnects): look.
                    Ok(Ok(EventStreamItem::Disconnected(_))) => {
                        let pause = Instant::now() + Duration::from_millis(200);
                        tokio::time::sleep_until(pause.min(deadline).into()).await;
                        read(client, id, None, deadline).await?
                    }
                    Ok(Ok(_)) => read(client, id, None, deadline).await?,
                    Err(_) if Instant::now() >= deadline => None,
                    Err(_) => read(client, id, None, deadline).await?,
                    Ok(Err(_)) => {
                        events = None;
                        read(client, id, None, deadline).await?
                    }
                }
            }
            None => {
                let step = until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(2));
                let ms = step.as_millis().max(1).to_string();
                read(client, id, Some(&ms), deadline).await?
            }
        };
        if let Some(latest) = next {
            job = latest;
        }
    }
}

/// Waits for the job to end (as [`wait`]), prints it, and exits as it ended: 0 succeeded,
/// 4 dead, 5 cancelled (and 6 when `timeout` passes first). Every command that waits
/// (`jobs wait`, `enqueue --wait`, `run --wait`) ends through this.
pub async fn wait_and_print(
    client: &Client,
    id: JobId,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let job = wait(client, id, timeout, json).await?;
    print_job(&job, json)?;
    crate::exit::job_outcome(&job)
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
            let timeout = crate::exit::duration("timeout", &timeout)?;
            wait_and_print(client, id(&raw)?, timeout, json).await
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
            )?;
            Ok(())
        }
    }
}
