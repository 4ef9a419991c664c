//! A job's log on its page, live. The page's one live stream (`GET /ui/live`, see
//! [`super::live`]) carries it when the page asks with `log=<id>&after=<attempt>:<seq>`:
//! `lines` events, each a piece of escaped HTML (`<li>` per line) that app.js appends to the
//! log, and one `end` event once the job has ended and every line was sent.
//!
//! It follows every attempt, not only one: a retry's lines arrive under the same view. It
//! wakes only for its own job: for lines this node's runs print (the hub's `log-<id>` topic)
//! and for the job's changes anywhere in the cluster (`job-<id>`, from the event feed). Lines
//! of runs on other nodes reach the store without telling this node, so while the job runs,
//! and only then, it also looks every [`POLL_RUNNING`]. A job waiting to run (for days,
//! maybe) costs nothing until its state changes. Each event's id is its last line's
//! `attempt:seq`, so a reconnecting browser (`Last-Event-ID`) resumes without repeating a
//! line.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::response::sse::Event as SseEvent;
use errand_core::{JobId, JobState, LogEntry, LogStream};
use errand_store::JobLogListParams;
use futures_util::Stream;
use tokio::sync::broadcast;

use super::live::{Changes, Hub, Topic};
use crate::{ApiError, AppState};

/// Lines a job's page shows before its stream takes over.
pub(crate) const INITIAL_LINES: u32 = 500;
/// Lines per event: a burst of output arrives in a few events, not thousands.
const CHUNK: u32 = 200;
/// While the job runs, how often the stream looks for lines that another node stored
/// (they reach the store in batches at least this often; this node's wake it at once).
const POLL_RUNNING: Duration = Duration::from_secs(1);
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

/// What the stream sends next.
enum Item {
    Lines {
        last: String,
        html: String,
    },
    /// The lines could not be rendered (a bug); the stream stops here.
    Failed,
    End,
}

struct Follower {
    state: AppState,
    id: JobId,
    after: Option<(u32, u64)>,
    changes: broadcast::Receiver<Arc<Changes>>,
    done: bool,
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
        let rendered = LogLines {
            lines: lines.iter().map(LogLine::of).collect(),
        }
        .render();
        match rendered {
            Ok(html) => {
                self.after = Some((last.attempt, last.seq));
                Some(Item::Lines {
                    last: format!("{}:{}", last.attempt, last.seq),
                    html,
                })
            }
            // A bug: say so in the log instead of skipping the lines unseen; the cursor
            // stays, so a reload (or reconnect) tries them again.
            Err(e) => {
                tracing::error!(job = %self.id, error = %e, "dashboard log stream: lines failed to render");
                self.done = true;
                Some(Item::Failed)
            }
        }
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
                    Some(POLL_RUNNING)
                }
            };
            let (job, log) = (Topic::Job(self.id), Topic::Log(self.id));
            let changes = &mut self.changes;
            let woken = async {
                loop {
                    match changes.recv().await {
                        Ok(c) if c.touches(&job) || c.touches(&log) => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let polled = async {
                match poll {
                    Some(after) => tokio::time::sleep(after).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = woken => {}
                () = polled => {}
                () = stop.cancelled() => return None,
            }
        }
    }

    /// One look: lines to send, the end, or how long to wait at most before the next look
    /// (`None`: until the job changes).
    async fn step(&mut self) -> Result<Result<Item, Option<Duration>>, ApiError> {
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
        Ok(Err((job.state == JobState::Running).then_some(POLL_RUNNING)))
    }
}

/// The `lines` and `end` events of job `id`'s log after `after` (`attempt:seq`, or empty
/// for the whole log); a job that does not exist is a 404 now, not an empty stream.
pub(crate) async fn follow(
    state: &AppState,
    hub: &Hub,
    id: JobId,
    after: &str,
) -> Result<impl Stream<Item = SseEvent> + Send + 'static, ApiError> {
    let after = match after {
        "" => None,
        raw => Some(parse_after(raw)?),
    };
    // Subscribed before the first read: a line stored in between wakes it.
    let changes = hub.subscribe();
    state.engine.job(id, Duration::ZERO).await?;
    let follower = Follower {
        changes,
        state: state.clone(),
        id,
        after,
        done: false,
    };
    Ok(futures_util::stream::unfold(follower, |mut f| async move {
        let event = match f.next().await? {
            Item::Lines { last, html } => SseEvent::default().id(last).event("lines").data(html),
            Item::Failed => SseEvent::default()
                .event("lines")
                .data(r#"<li class="line err"><span class="text">errand could not show the next lines of this log; reload the page</span></li>"#),
            Item::End => SseEvent::default().event("end").data("end"),
        };
        Some((event, f))
    }))
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
