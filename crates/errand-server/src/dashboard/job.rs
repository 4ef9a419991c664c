//! A job's page (`/ui/jobs/{id}`): its state and settings, payload, result or error,
//! progress, attempts with their errors, a timeline, why it is not running (the engine's
//! explanation), its log live, and cancel and retry.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use errand_core::{Attempt, Job, JobId, JobState};
use errand_store::JobLogListParams;
use jiff::Timestamp;

use super::job_logs::{LogLine, INITIAL_LINES};
use super::view::{between, duration_ms, pretty_json, When};
use super::{render, Dashboard, Layout, Topic};
use crate::extract::{job_id, ApiPath};
use crate::{ApiError, AppState};

/// An attempt as a row.
struct AttemptRow {
    attempt: u32,
    worker: String,
    started: When,
    took: String,
    outcome: &'static str,
    error: String,
    /// `exit 1`, `signal 9`, with CPU and memory, for hosted scripts.
    report: String,
}

/// One line of the timeline.
struct Moment {
    at: Timestamp,
    when: When,
    what: String,
}

/// A reason the job waits.
struct Reason {
    code: String,
    message: String,
    until: Option<When>,
    jobs: Vec<(String, String)>,
}

/// What changes while the job lives: the part of the page re-fetched when it changes.
struct JobLive {
    id: String,
    state: &'static str,
    can_cancel: bool,
    can_retry: bool,
    queue: String,
    queue_href: String,
    kind: String,
    attempts_text: String,
    priority: i32,
    tags: Vec<String>,
    worker: String,
    created: When,
    run_at: When,
    started: Option<When>,
    finished: Option<When>,
    lease_expires: Option<When>,
    timeout: String,
    progress_percent: Option<String>,
    progress_message: String,
    result: Option<String>,
    error: Option<String>,
    checkpoint: Option<String>,
    summary: Option<String>,
    reasons: Vec<Reason>,
    attempts: Vec<AttemptRow>,
    timeline: Vec<Moment>,
}

/// `templates/job.html`.
#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    layout: Layout,
    live: JobLive,
    payload: String,
    lines: Vec<LogLine>,
}

/// `templates/job_live.html`.
#[derive(Template)]
#[template(path = "job_live.html")]
struct JobLiveFragment {
    live: JobLive,
}

fn report_text(a: &Attempt) -> String {
    let Some(r) = &a.report else {
        return String::new();
    };
    let end = match (r.exit_code, r.signal) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => "ended".into(),
    };
    format!(
        "{end}, {} CPU, {} MiB peak",
        duration_ms(r.cpu_ms),
        r.max_rss_bytes / (1024 * 1024)
    )
}

fn timeline(job: &Job, attempts: &[Attempt], now: Timestamp) -> Vec<Moment> {
    let mut out = vec![Moment {
        at: job.created_at,
        when: When::of(job.created_at, now),
        what: "enqueued".into(),
    }];
    if job.run_at > job.created_at && job.attempt == 0 {
        out.push(Moment {
            at: job.run_at,
            when: When::of(job.run_at, now),
            what: "due to run".into(),
        });
    }
    for a in attempts {
        out.push(Moment {
            at: a.started_at,
            when: When::of(a.started_at, now),
            what: match &a.worker {
                Some(w) => format!("attempt {} started on {w}", a.attempt),
                None => format!("attempt {} started", a.attempt),
            },
        });
        if let Some(end) = a.finished_at {
            let mut what = format!("attempt {} {}", a.attempt, a.outcome.as_str());
            if let Some(e) = a.error.as_deref().and_then(|e| e.lines().next()) {
                what.push_str(": ");
                what.push_str(&super::view::truncate(e, 120));
            }
            out.push(Moment {
                at: end,
                when: When::of(end, now),
                what,
            });
        }
    }
    if job.state.is_final() {
        if let Some(end) = job.finished_at {
            out.push(Moment {
                at: end,
                when: When::of(end, now),
                what: format!("job {}", job.state.as_str()),
            });
        }
    } else if matches!(job.state, JobState::Scheduled) && job.attempt > 0 {
        out.push(Moment {
            at: job.run_at,
            when: When::of(job.run_at, now),
            what: "next attempt due".into(),
        });
    }
    out.sort_by_key(|m| m.at);
    out
}

async fn read_live(state: &AppState, id: JobId) -> Result<JobLive, ApiError> {
    let now = Timestamp::now();
    let job = state.engine.job(id, std::time::Duration::ZERO).await?;
    let attempts = state.engine.attempts(id).await?;
    let waiting = !(job.state == JobState::Running || job.state.is_final());
    let explanation = if waiting {
        Some(state.engine.explain(id).await?)
    } else {
        None
    };
    let attempt_rows = attempts
        .iter()
        .map(|a| AttemptRow {
            attempt: a.attempt,
            worker: a.worker.clone().unwrap_or_default(),
            started: When::of(a.started_at, now),
            took: between(Some(a.started_at), a.finished_at).unwrap_or_default(),
            outcome: a.outcome.as_str(),
            error: a.error.clone().unwrap_or_default(),
            report: report_text(a),
        })
        .collect();
    Ok(JobLive {
        id: job.id.to_string(),
        state: job.state.as_str(),
        can_cancel: !job.state.is_final(),
        can_retry: job.state.can_retry(),
        queue_href: format!("/ui/jobs?queue={}", job.queue),
        queue: job.queue.to_string(),
        kind: job.kind.to_string(),
        attempts_text: format!("{} of {}", job.attempt, job.max_attempts),
        priority: job.priority,
        tags: job.tags.clone(),
        worker: job.worker.clone().unwrap_or_default(),
        created: When::of(job.created_at, now),
        run_at: When::of(job.run_at, now),
        started: When::maybe(job.started_at, now),
        finished: When::maybe(job.finished_at, now),
        lease_expires: (job.state == JobState::Running)
            .then(|| When::maybe(job.lease_expires_at, now))
            .flatten(),
        timeout: job.timeout_ms.map(duration_ms).unwrap_or_default(),
        progress_percent: job
            .progress
            .as_ref()
            .and_then(|p| p.percent)
            .map(|p| format!("{:.0}", p.clamp(0.0, 100.0))),
        progress_message: job
            .progress
            .as_ref()
            .and_then(|p| p.message.clone())
            .unwrap_or_default(),
        result: job.result.as_ref().map(pretty_json),
        error: job.error.clone(),
        checkpoint: job.checkpoint.as_ref().map(pretty_json),
        summary: explanation.as_ref().map(|e| e.summary.clone()),
        reasons: explanation
            .map(|e| {
                e.reasons
                    .into_iter()
                    .map(|r| Reason {
                        code: serde_json::to_value(r.code)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        message: r.message,
                        until: When::maybe(r.until, now),
                        jobs: r
                            .jobs
                            .iter()
                            .map(|j| (j.to_string(), format!("/ui/jobs/{j}")))
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        timeline: timeline(&job, &attempts, now),
        attempts: attempt_rows,
    })
}

/// `GET /ui/jobs/{id}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let id = match job_id(&id) {
        Ok(id) => id,
        Err(e) => return dash.error_page(e),
    };
    // The live generation before the data: a change in between reaches the tab.
    let mut layout = dash.layout(format!("Job {id}"), "/ui/jobs", &[Topic::Job(id)]);
    let read = async {
        let live = read_live(&state, id).await?;
        let job = state.engine.job(id, std::time::Duration::ZERO).await?;
        let lines = state
            .engine
            .logs(JobLogListParams {
                owner: id.0,
                attempt: None,
                after: None,
                limit: INITIAL_LINES,
            })
            .await?;
        Ok::<_, ApiError>((live, job, lines))
    };
    let (live, job, lines) = match read.await {
        Ok(r) => r,
        Err(e) => return dash.error_page(e),
    };
    let after = lines
        .last()
        .map(|l| format!("{}:{}", l.attempt, l.seq))
        .unwrap_or_default();
    // The log follows over the page's one live stream (not a second connection).
    layout.live_url = dash.live_url(
        &[Topic::Job(id)],
        &[("log", id.to_string()), ("after", after)],
    );
    dash.page(&JobPage {
        layout,
        live,
        payload: pretty_json(&job.payload),
        lines: lines.iter().map(LogLine::of).collect(),
    })
}

/// `GET /ui/jobs/{id}/live`.
pub(crate) async fn live(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let live = read_live(&state, job_id(&id)?).await?;
    Ok(render(StatusCode::OK, &JobLiveFragment { live }))
}

/// `POST /ui/jobs/{id}/cancel`: cancels the job; answers its live part.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    state.engine.cancel(id).await?;
    dash.touch(&[Topic::Job(id), Topic::Jobs, Topic::Queues]);
    live(State(state), ApiPath(id.to_string())).await
}

/// `POST /ui/jobs/{id}/retry`: runs the job again now; answers its live part.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    state.engine.retry(id).await?;
    dash.touch(&[Topic::Job(id), Topic::Jobs, Topic::Queues, Topic::Dead]);
    live(State(state), ApiPath(id.to_string())).await
}
