//! A job's log on its page, live: `GET /ui/jobs/{id}/log-stream?after=<attempt>:<seq>` is a
//! server-sent-event stream of `lines` events, each a piece of escaped HTML (`<li>` per
//! line) that htmx appends to the log, and one `end` event once the job has ended and
//! every line was sent (the page then closes the stream instead of reconnecting).
//!
//! It follows every attempt, not only one: a retry's lines arrive under the same view. It
//! wakes at once for lines and state changes of this node (the engine's in-process
//! broadcasts, as `GET /v1/jobs/{id}/logs?follow=true` does) and otherwise looks for lines
//! of runs on other nodes every [`POLL_RUNNING`] while the job runs. Each event's id is its
//! last line's `attempt:seq`, so a reconnecting browser (`Last-Event-ID`) resumes without
//! repeating a line.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use errand_core::{JobId, JobState, LogEntry, LogStream};
use errand_store::JobLogListParams;
use serde::Deserialize;

use crate::extract::{job_id, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// Lines a job's page shows before its stream takes over.
pub(crate) const INITIAL_LINES: u32 = 500;
/// Lines per event: a burst of output arrives in a few events, not thousands.
const CHUNK: u32 = 200;
/// While the job runs, how often the stream looks for lines that another node stored
/// (they reach the store in batches at least this often; this node's wake it at once).
const POLL_RUNNING: Duration = Duration::from_secs(1);
/// While the job waits, how often the stream checks on it when no event of this node
/// says anything (it was claimed or ended on another node).
const POLL_WAITING: Duration = Duration::from_secs(5);
/// How often an idle stream sends a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A log line as the page shows it.
pub(crate) struct LogLine {
    /// `attempt:seq`.
    pub(crate) place: String,
    /// `out` or `err`.
    pub(crate) stream: &'static str,
    /// When it was read, RFC 3339 (for `datetime`).
    pub(crate) iso: String,
    /// `15:04:05`.
    pub(crate) clock: String,
    /// The text.
    pub(crate) text: String,
}

impl LogLine {
    /// The line of `entry`.
    pub(crate) fn of(entry: &LogEntry) -> Self {
        Self {
            place: format!("{}:{}", entry.attempt, entry.seq),
            stream: match entry.stream {
                LogStream::Stdout => "out",
                LogStream::Stderr => "err",
            },
            iso: entry.at.to_string(),
            clock: entry.at.strftime("%H:%M:%S").to_string(),
            text: entry.line.clone(),
        }
    }
}

/// `templates/log_lines.html`.
#[derive(Template)]
#[template(path = "log_lines.html")]
pub(crate) struct LogLines {
    pub(crate) lines: Vec<LogLine>,
}

fn parse_after(raw: &str) -> Result<(u32, u64), ApiError> {
    let bad = || ApiError::invalid(format!("after: `{raw}` is not a log place (attempt:seq)"));
    let (a, s) = raw.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?))
}

/// The query of the stream.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    /// The last line the page already shows.
    #[serde(default)]
    after: String,
}

/// What the stream sends next.
enum Item {
    Lines { last: String, html: String },
    End,
}

struct Follower {
    state: AppState,
    id: JobId,
    after: Option<(u32, u64)>,
    logs: tokio::sync::broadcast::Receiver<errand_engine::LogAppended>,
    jobs: tokio::sync::broadcast::Receiver<errand_engine::JobEvent>,
    done: bool,
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl Follower {
    async fn read(&self, limit: u32) -> Result<Vec<LogEntry>, ApiError> {
        Ok(self
            .state
            .engine
            .logs(JobLogListParams {
                owner: self.id.0,
                attempt: None,
                after: self.after,
                limit,
            })
            .await?)
    }

    fn lines(&mut self, lines: &[LogEntry]) -> Option<Item> {
        let last = lines.last()?;
        self.after = Some((last.attempt, last.seq));
        let html = LogLines {
            lines: lines.iter().map(LogLine::of).collect(),
        }
        .render()
        .unwrap_or_default();
        Some(Item::Lines {
            last: format!("{}:{}", last.attempt, last.seq),
            html,
        })
    }

    /// The next item; `None` when the stream is over (after `end`, or the server stops).
    async fn next(&mut self) -> Option<Item> {
        let stop = self.state.engine.shutdown_token();
        loop {
            if self.done {
                return None;
            }
            let poll = match self.step().await {
                Ok(Ok(item)) => return Some(item),
                Ok(Err(poll)) => poll,
                Err(e) => {
                    tracing::warn!(job = %self.id, error = %e.message, "dashboard log stream: reading failed; retrying");
                    POLL_RUNNING
                }
            };
            let id = self.id;
            let woken = async {
                loop {
                    tokio::select! {
                        e = self.logs.recv() => match e {
                            Ok(e) if e.owner == id.0 => return,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                        },
                        e = self.jobs.recv() => match e {
                            Ok(e) if e.id == id => return,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                        },
                    }
                }
            };
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(poll) => {}
                () = stop.cancelled() => return None,
            }
        }
    }

    /// One look: lines to send, the end, or how long to wait before the next look.
    async fn step(&mut self) -> Result<Result<Item, Duration>, ApiError> {
        let lines = self.read(CHUNK).await?;
        if let Some(item) = self.lines(&lines) {
            return Ok(Ok(item));
        }
        let job = self.state.engine.job(self.id, Duration::ZERO).await?;
        if job.state.is_final() {
            // Lines written just before the end are in the store by now.
            let lines = self.read(CHUNK).await?;
            if let Some(item) = self.lines(&lines) {
                return Ok(Ok(item));
            }
            self.done = true;
            return Ok(Ok(Item::End));
        }
        Ok(Err(if job.state == JobState::Running {
            POLL_RUNNING
        } else {
            POLL_WAITING
        }))
    }
}

/// `GET /ui/jobs/{id}/log-stream`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    // A job that does not exist is a 404 now, not an empty stream.
    state.engine.job(id, Duration::ZERO).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.trim().is_empty())
        .map(str::to_string);
    let after = match resume.as_deref().unwrap_or(q.after.trim()) {
        "" => None,
        raw => Some(parse_after(raw)?),
    };
    let follower = Follower {
        logs: state.engine.subscribe_logs(),
        jobs: state.engine.subscribe(),
        _place: state.stream_place()?,
        state,
        id,
        after,
        done: false,
    };
    let events = futures_util::stream::unfold(follower, |mut f| async move {
        let event = match f.next().await? {
            Item::Lines { last, html } => SseEvent::default().id(last).event("lines").data(html),
            Item::End => SseEvent::default().event("end").data("end"),
        };
        Some((Ok::<_, Infallible>(event), f))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_escaped_html() {
        let html = LogLines {
            lines: vec![LogLine {
                place: "1:1".into(),
                stream: "err",
                iso: "2025-01-01T00:00:00Z".into(),
                clock: "00:00:00".into(),
                text: "<script>alert(1)</script> & \"q\"".into(),
            }],
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;q&#34;"),
            "{html}"
        );
    }

    #[test]
    fn places_parse_or_are_refused() {
        assert_eq!(parse_after("2:15").unwrap(), (2, 15));
        assert!(parse_after("2").is_err());
        assert!(parse_after("a:b").is_err());
    }
}
