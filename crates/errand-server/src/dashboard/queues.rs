//! The queues page (`/ui/queues`): each queue's jobs per state, its limits and defaults,
//! and pause and resume.
//!
//! Counts come from the store's per-queue counters (`GET /v1/queues`'s engine call), a
//! few rows per queue, never a count over jobs.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use errand_core::{QueueInfo, QueueName};

use super::view::{count, duration_ms, query_url};
use super::{render, Dashboard, Layout, Topic};
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// A queue as a row of the queues and overview tables.
pub(crate) struct QueueRow {
    /// Its name.
    pub(crate) name: String,
    /// Its jobs page.
    pub(crate) jobs_href: String,
    /// Its dead jobs page.
    pub(crate) dead_href: String,
    /// Whether it hands out jobs.
    pub(crate) paused: bool,
    /// Where its pause or resume button posts.
    pub(crate) toggle_href: String,
    pub(crate) available: String,
    pub(crate) scheduled: String,
    pub(crate) running: String,
    pub(crate) blocked: String,
    pub(crate) succeeded: String,
    pub(crate) dead: String,
    /// Dead jobs are waiting for someone.
    pub(crate) has_dead: bool,
    pub(crate) cancelled: String,
    /// Age of the oldest ready job, or empty.
    pub(crate) oldest_ready: String,
    /// Claims parked on this node waiting for work.
    pub(crate) waiting_claims: u32,
    /// `8`, or empty for no limit.
    pub(crate) concurrency: String,
    /// `100 per 1s`, or empty for no limit.
    pub(crate) rate: String,
    /// The defaults for new jobs, in words, or empty.
    pub(crate) defaults: String,
}

impl QueueRow {
    /// The row of `q`.
    pub(crate) fn of(q: &QueueInfo) -> Self {
        let c = &q.counts;
        let name = q.name.to_string();
        let s = &q.settings;
        let d = &s.defaults;
        let mut defaults = Vec::new();
        if let Some(n) = d.max_attempts {
            defaults.push(format!("{n} attempts"));
        }
        if let Some(p) = d.priority {
            defaults.push(format!("priority {p}"));
        }
        if let Some(t) = d.timeout_ms {
            defaults.push(format!("timeout {}", duration_ms(t)));
        }
        if let Some(b) = &d.backoff {
            defaults.push(format!(
                "backoff {} to {}",
                duration_ms(b.base_ms),
                duration_ms(b.max_ms)
            ));
        }
        Self {
            jobs_href: query_url("/ui/jobs", &[("queue", name.clone())]),
            dead_href: query_url("/ui/dead", &[("queue", name.clone())]),
            // The name goes in the query, percent-encoded: in the path a queue named `.` or
            // `..` would be resolved away by the browser.
            toggle_href: query_url(
                if q.paused {
                    "/ui/queues/resume"
                } else {
                    "/ui/queues/pause"
                },
                &[("queue", name.clone())],
            ),
            paused: q.paused,
            available: count(c.available),
            scheduled: count(c.scheduled),
            running: count(c.running),
            blocked: count(c.blocked),
            succeeded: count(c.succeeded),
            dead: count(c.dead),
            has_dead: c.dead > 0,
            cancelled: count(c.cancelled),
            oldest_ready: q
                .oldest_available_age_ms
                .map(duration_ms)
                .unwrap_or_default(),
            waiting_claims: q.waiting_claims,
            concurrency: s.concurrency.map(|n| n.to_string()).unwrap_or_default(),
            rate: s
                .rate
                .map(|r| format!("{} per {}", r.limit, duration_ms(r.period_ms)))
                .unwrap_or_default(),
            defaults: defaults.join(", "),
            name,
        }
    }
}

/// Every queue's row, by name.
pub(crate) async fn rows_of(state: &AppState) -> Result<Vec<QueueRow>, ApiError> {
    Ok(state
        .engine
        .queue_list()
        .await?
        .iter()
        .map(QueueRow::of)
        .collect())
}

/// `templates/queues.html`.
#[derive(Template)]
#[template(path = "queues.html")]
struct QueuesPage {
    layout: Layout,
    rows: Vec<QueueRow>,
    /// The table also refreshes every [`super::TICK`]: a queue paused through the API or
    /// another node's dashboard records no event.
    tick_ms: u128,
}

/// `templates/queues_rows.html`: the table's body, re-fetched when queues change.
#[derive(Template)]
#[template(path = "queues_rows.html")]
struct QueuesRows {
    rows: Vec<QueueRow>,
}

/// `GET /ui/queues`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
) -> Response {
    let layout = dash.layout("Queues", "/ui/queues", &[Topic::Queues]);
    match rows_of(&state).await {
        Ok(rows) => dash.page(&QueuesPage {
            layout,
            rows,
            tick_ms: super::TICK.as_millis(),
        }),
        Err(e) => dash.error_page(e),
    }
}

/// `GET /ui/queues/rows`.
pub(crate) async fn rows(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(render(
        StatusCode::OK,
        &QueuesRows {
            rows: rows_of(&state).await?,
        },
    ))
}

/// The queue an action names (`?queue=`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Named {
    queue: String,
}

/// `POST /ui/queues/pause?queue=<name>`: pauses the queue; answers the table's new body.
pub(crate) async fn pause(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(Named { queue }): ApiQuery<Named>,
) -> Result<Response, ApiError> {
    let queue = QueueName::parse(&queue)?;
    state.engine.queue_pause(&queue).await?;
    dash.touch(&[Topic::Queues]);
    rows(State(state)).await
}

/// `POST /ui/queues/resume?queue=<name>`: resumes the queue; answers the table's new body.
pub(crate) async fn resume(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(Named { queue }): ApiQuery<Named>,
) -> Result<Response, ApiError> {
    let queue = QueueName::parse(&queue)?;
    state.engine.queue_resume(&queue).await?;
    dash.touch(&[Topic::Queues]);
    rows(State(state)).await
}
