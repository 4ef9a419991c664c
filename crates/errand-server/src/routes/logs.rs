//! Log lines of runs: `GET /v1/jobs/{id}/logs` (pages, or a stream that follows the attempt
//! until it ends) and the same for a continuous instance.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use errand_api::{ErrorBody, InstanceLogQuery, LogGap, LogPage, LogQuery, MAX_LOG_PAGE};
use errand_core::{JobId, JobState, LogEntry};
use errand_store::JobLogListParams;
use futures_util::stream;

use crate::extract::{job_id, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// Lines per page when none is asked for.
const DEFAULT_LIMIT: u32 = 1000;
/// How long a follower waits for the attempt it follows to start before it ends the stream
/// (the job may wait for a worker for ever); the caller asks again.
const FOLLOW_START_WAIT: Duration = Duration::from_secs(30);
/// How often a follower looks for new lines when nothing in this process told it of any
/// (lines of runs on other nodes reach the store in batches at least this often).
const FOLLOW_POLL: Duration = Duration::from_millis(250);

fn parse_cursor(raw: &str) -> Result<(u32, u64), ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "cursor: `{raw}` is not a log cursor (`attempt:seq` from next_cursor)"
        ))
    };
    let (a, s) = raw.split_once(':').ok_or_else(bad)?;
    // Numbers past the largest attempt or line simply point past every line.
    let a: u64 = a.parse().map_err(|_| bad())?;
    let s: u128 = s.parse().map_err(|_| bad())?;
    Ok((
        u32::try_from(a).unwrap_or(u32::MAX),
        u64::try_from(s).unwrap_or(u64::MAX),
    ))
}

/// The gaps (lines dropped by the bound) between `after` and the lines of a page.
fn gaps(after: Option<(u32, u64)>, lines: &[LogEntry]) -> Vec<LogGap> {
    let mut out = Vec::new();
    let mut prev = after;
    for l in lines {
        let before = match prev {
            Some((a, s)) if a == l.attempt => s,
            _ => 0,
        };
        if l.seq > before + 1 {
            out.push(LogGap {
                attempt: l.attempt,
                after_seq: before,
                dropped: l.seq - before - 1,
            });
        }
        prev = Some((l.attempt, l.seq));
    }
    out
}

fn limit_of(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LOG_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be between 1 and {MAX_LOG_PAGE}"
        )));
    }
    Ok(limit)
}

async fn page(
    state: &AppState,
    owner: uuid::Uuid,
    attempt: Option<u32>,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<LogPage, ApiError> {
    let limit = limit_of(limit)?;
    let after = cursor.map(parse_cursor).transpose()?;
    let lines = state
        .engine
        .logs(JobLogListParams {
            owner,
            attempt,
            after,
            limit,
        })
        .await?;
    let next_cursor = (lines.len() as u32 == limit)
        .then(|| lines.last().map(|l| format!("{}:{}", l.attempt, l.seq)))
        .flatten();
    Ok(LogPage {
        gaps: gaps(after, &lines),
        lines,
        next_cursor,
    })
}

/// A job's log lines: stdout as INFO, stderr as ERROR, per attempt. With `follow=true`,
/// an `application/x-ndjson` stream of lines (and `{"gap": ...}` objects for dropped lines)
/// that ends with `{"end": {...}}` when the attempt ends.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", operation_id = "job_logs", tag = "jobs",
    params(("id" = errand_core::JobId, Path, description = "Job id"), LogQuery),
    responses((status = 200, description = "A page of lines; with follow, a stream of JSON lines (lines, gaps, then an end object)",
            content((LogPage = "application/json"), (String = "application/x-ndjson"))),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub(crate) async fn job_logs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let job = state.engine.job(id, Duration::ZERO).await?;
    if q.follow != Some(true) {
        let p = page(&state, id.0, q.attempt, q.cursor.as_deref(), q.limit).await?;
        return Ok(Json(p).into_response());
    }
    let limit = limit_of(q.limit)?;
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    // The attempt followed: the one asked for, else the current one, else the next.
    let attempt = q.attempt.unwrap_or(match job.state {
        JobState::Running => job.attempt,
        s if s.is_final() => job.attempt.max(1),
        _ => job.attempt + 1,
    });
    let place = state.wait_place()?;
    let follow = Follow {
        logs: state.engine.subscribe_logs(),
        jobs: state.engine.subscribe(),
        state,
        id,
        attempt,
        after: after.or(Some((attempt, 0))),
        limit,
        start_by: tokio::time::Instant::now() + FOLLOW_START_WAIT,
        done: false,
        _place: place,
    };
    let body = Body::from_stream(stream::unfold(follow, |mut f| async move {
        let chunk = f.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), f))
    }));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

/// A follower's position.
struct Follow {
    /// Lines stored by this process: a follower wakes at once for them.
    logs: tokio::sync::broadcast::Receiver<errand_engine::LogAppended>,
    /// State changes in this process: the end of the attempt wakes it too.
    jobs: tokio::sync::broadcast::Receiver<errand_engine::JobEvent>,
    state: AppState,
    id: JobId,
    attempt: u32,
    after: Option<(u32, u64)>,
    /// Lines per chunk.
    limit: u32,
    /// When a follower of an attempt that has not started gives up.
    start_by: tokio::time::Instant,
    done: bool,
    /// Holds one of the server's places for waiting calls while the stream is open.
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl Follow {
    /// The next lines as NDJSON, waiting for some; `None` after the end line.
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        loop {
            let lines = self
                .state
                .engine
                .logs(JobLogListParams {
                    owner: self.id.0,
                    attempt: Some(self.attempt),
                    after: self.after,
                    limit: self.limit,
                })
                .await;
            let lines = match lines {
                Ok(l) => l,
                Err(e) => {
                    return Some(self.end_line(serde_json::json!({ "error": e.to_string() })))
                }
            };
            if !lines.is_empty() {
                let mut out = Vec::new();
                for gap in gaps(self.after, &lines) {
                    push_json(&mut out, &serde_json::json!({ "gap": gap }));
                }
                for l in &lines {
                    push_json(&mut out, l);
                }
                self.after = lines.last().map(|l| (l.attempt, l.seq));
                return Some(out);
            }
            // No new lines: has the attempt ended? Read the job, then look once more so
            // that lines written just before the end are not missed.
            let job = match self.state.engine.job(self.id, Duration::ZERO).await {
                Ok(j) => j,
                Err(e) => {
                    return Some(self.end_line(serde_json::json!({ "error": e.to_string() })))
                }
            };
            let ended = job.attempt > self.attempt
                || (job.attempt == self.attempt && job.state != JobState::Running)
                || job.state.is_final();
            if !ended && job.attempt < self.attempt && tokio::time::Instant::now() >= self.start_by
            {
                return Some(self.end_line(serde_json::json!({
                    "attempt": self.attempt,
                    "job_state": job.state,
                    "started": false,
                })));
            }
            if ended {
                let more = self
                    .state
                    .engine
                    .logs(JobLogListParams {
                        owner: self.id.0,
                        attempt: Some(self.attempt),
                        after: self.after,
                        limit: 1,
                    })
                    .await
                    .map(|l| !l.is_empty())
                    .unwrap_or(false);
                if more {
                    continue;
                }
                return Some(self.end_line(serde_json::json!({
                    "attempt": self.attempt,
                    "job_state": job.state,
                })));
            }
            let id = self.id;
            let wake = async {
                loop {
                    tokio::select! {
                        e = self.logs.recv() => match e {
                            Ok(e) if e.owner == id.0 => return,
                            Ok(_) => {}
                            // Missed events: look at the store now.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            // No more events (shutting down): the poll below still runs.
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await
                            }
                        },
                        e = self.jobs.recv() => match e {
                            Ok(e) if e.id == id => return,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await
                            }
                        },
                    }
                }
            };
            let shutdown = self.state.engine.shutdown_token();
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = shutdown.cancelled() => {
                    return Some(self.end_line(serde_json::json!({ "error": "the server is shutting down" })));
                }
            }
        }
    }

    fn end_line(&mut self, end: serde_json::Value) -> Vec<u8> {
        self.done = true;
        let mut out = Vec::new();
        push_json(&mut out, &serde_json::json!({ "end": end }));
        out
    }
}

fn push_json<T: serde::Serialize>(out: &mut Vec<u8>, v: &T) {
    if serde_json::to_writer(&mut *out, v).is_ok() {
        out.push(b'\n');
    }
}

/// A continuous instance's log lines, per restart (`attempt` = restart, from 1).
#[utoipa::path(get, path = "/v1/definitions/{name}/instances/{instance}/logs", operation_id = "instance_logs", tag = "definitions",
    params(("name" = errand_api::schema::DefinitionName, Path, description = "Definition name"),
        ("instance" = errand_api::schema::InstanceId, Path, description = "Instance id"), InstanceLogQuery),
    responses((status = 200, description = "A page of lines", body = LogPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such definition", body = ErrorBody)))]
pub(crate) async fn instance_logs(
    State(state): State<AppState>,
    ApiPath((name, instance)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<InstanceLogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    super::definitions::find(&state, &name)?;
    let instance = uuid::Uuid::parse_str(&instance)
        .map_err(|_| ApiError::invalid(format!("instance: `{instance}` is not an instance id")))?;
    Ok(Json(
        page(&state, instance, q.attempt, q.cursor.as_deref(), q.limit).await?,
    ))
}
