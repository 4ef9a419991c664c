//! The schedules page (`/ui/schedules`): each schedule's trigger, its next runs, its last
//! run and that job's state; pause and resume, run now, and backfill a past range.
//!
//! Next runs are computed from the schedule's trigger and next slot as read with the list
//! (the same function `GET /v1/schedules/{name}/next` uses), so the page costs one read
//! of the schedules however many there are.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use errand_core::schedule_spec::Schedule;
use errand_core::ScheduleName;
use jiff::Timestamp;

use super::view::{duration_ms, When};
use super::{render, Dashboard, Layout, Topic};
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// Upcoming slots shown per schedule.
const NEXT_RUNS: usize = 3;

/// A schedule as a row.
struct ScheduleRow {
    name: String,
    /// `cron 0 3 * * * (Europe/Paris)` or `every 5 min`.
    trigger: String,
    kind: String,
    queue: String,
    paused: bool,
    next: Vec<When>,
    last_fire: Option<When>,
    last_job: Option<(String, String)>,
    last_state: Option<&'static str>,
    /// `?name=<name>`, percent-encoded, for the actions' URLs.
    action_query: String,
}

impl ScheduleRow {
    fn of(s: &Schedule, now: Timestamp) -> Self {
        let spec = &s.spec;
        let trigger = match (&spec.cron, spec.every_ms) {
            (Some(cron), _) => format!("cron {cron} ({})", spec.timezone),
            (None, Some(ms)) => format!("every {}", duration_ms(ms)),
            (None, None) => String::new(),
        };
        let next = match (s.paused, s.next_slot(now), spec.trigger()) {
            (false, Some(at), Ok(t)) => t
                .next_n(at - jiff::SignedDuration::from_millis(1), NEXT_RUNS)
                .into_iter()
                .map(|t| When::of(t, now))
                .collect(),
            _ => Vec::new(),
        };
        let name = spec.name.to_string();
        Self {
            // The name goes in the query, percent-encoded: in the path a schedule named `.`
            // or `..` would be resolved away by the browser.
            action_query: super::view::query_url("", &[("name", name.clone())]),
            trigger,
            kind: spec.job.kind.to_string(),
            queue: spec.job.queue.to_string(),
            paused: s.paused,
            next,
            last_fire: When::maybe(s.last_fire_at, now),
            last_job: s
                .last_job_id
                .map(|id| (id.to_string(), format!("/ui/jobs/{id}"))),
            last_state: s.last_job_state.map(|st| st.as_str()),
            name,
        }
    }
}

/// The table and, after an action, what it did.
struct SchedulesView {
    rows: Vec<ScheduleRow>,
    flash: Option<String>,
}

/// `templates/schedules.html`.
#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    layout: Layout,
    view: SchedulesView,
}

/// `templates/schedules_rows.html`.
#[derive(Template)]
#[template(path = "schedules_rows.html")]
struct SchedulesRows {
    view: SchedulesView,
}

async fn read(state: &AppState, flash: Option<String>) -> Result<SchedulesView, ApiError> {
    let now = Timestamp::now();
    Ok(SchedulesView {
        rows: state
            .engine
            .schedule_list()
            .await?
            .iter()
            .map(|s| ScheduleRow::of(s, now))
            .collect(),
        flash,
    })
}

/// `GET /ui/schedules`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
) -> Response {
    // The live generation before the data: a change in between reaches the tab.
    let layout = dash.layout("Schedules", "/ui/schedules", &[Topic::Schedules]);
    match read(&state, None).await {
        Ok(view) => dash.page(&SchedulesPage { layout, view }),
        Err(e) => dash.error_page(e),
    }
}

/// `GET /ui/schedules/rows`.
pub(crate) async fn rows(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(render(
        StatusCode::OK,
        &SchedulesRows {
            view: read(&state, None).await?,
        },
    ))
}

async fn answer(state: &AppState, dash: &Dashboard, flash: String) -> Result<Response, ApiError> {
    dash.touch(&[Topic::Schedules, Topic::Jobs, Topic::Queues]);
    Ok(render(
        StatusCode::OK,
        &SchedulesRows {
            view: read(state, Some(flash)).await?,
        },
    ))
}

/// The schedule an action names (`?name=`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Named {
    name: String,
}

/// `POST /ui/schedules/pause?name=<name>`.
pub(crate) async fn pause(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(Named { name }): ApiQuery<Named>,
) -> Result<Response, ApiError> {
    let name = ScheduleName::parse(&name)?;
    state.engine.schedule_pause(&name).await?;
    answer(&state, &dash, format!("Paused {name}.")).await
}

/// `POST /ui/schedules/resume?name=<name>`.
pub(crate) async fn resume(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(Named { name }): ApiQuery<Named>,
) -> Result<Response, ApiError> {
    let name = ScheduleName::parse(&name)?;
    state.engine.schedule_resume(&name).await?;
    answer(&state, &dash, format!("Resumed {name}.")).await
}

/// `POST /ui/schedules/trigger?name=<name>`: runs the schedule's job now, under its overlap
/// policy.
pub(crate) async fn trigger(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(Named { name }): ApiQuery<Named>,
) -> Result<Response, ApiError> {
    let name = ScheduleName::parse(&name)?;
    let job = state.engine.schedule_trigger(&name).await?;
    answer(&state, &dash, format!("{name} runs now: job {}.", job.id)).await
}

/// `from` and `to` of a backfill form: `datetime-local` values, read as UTC.
fn backfill_range(body: &[u8]) -> Result<(Timestamp, Timestamp), ApiError> {
    let mut from = None;
    let mut to = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        let at = || {
            let text = v.trim();
            text.parse::<Timestamp>()
                .or_else(|_| {
                    text.parse::<jiff::civil::DateTime>()
                        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
                        .map(|z| z.timestamp())
                })
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "{k}: `{text}` is not a time (2025-01-31T14:00, read as UTC)"
                    ))
                })
        };
        match k.as_ref() {
            "from" => from = Some(at()?),
            "to" => to = Some(at()?),
            _ => {}
        }
    }
    match (from, to) {
        (Some(from), Some(to)) if from < to => Ok((from, to)),
        (Some(_), Some(_)) => Err(ApiError::invalid("from: must be before to")),
        _ => Err(ApiError::invalid("give both from and to")),
    }
}

/// `POST /ui/schedules/backfill?name=<name>` with a form of `from` and `to`: runs every slot of
/// the range that has no job yet.
pub(crate) async fn backfill(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(Named { name }): ApiQuery<Named>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = ScheduleName::parse(&name)?;
    let (from, to) = backfill_range(&body)?;
    let jobs = state.engine.schedule_backfill(&name, from, to).await?;
    let n = jobs.len();
    answer(
        &state,
        &dash,
        format!(
            "Backfilled {name}: {n} job{} for slots without one.",
            if n == 1 { "" } else { "s" }
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backfill_ranges_read_local_form_times_as_utc() {
        let (from, to) =
            backfill_range(b"from=2025-01-31T14%3A00&to=2025-01-31T16:30:00Z").unwrap();
        assert_eq!(from.to_string(), "2025-01-31T14:00:00Z");
        assert_eq!(to.to_string(), "2025-01-31T16:30:00Z");
        assert!(backfill_range(b"from=2025-01-31T16:00&to=2025-01-31T14:00").is_err());
        assert!(backfill_range(b"from=2025-01-31T16:00").is_err());
        assert!(backfill_range(b"from=yesterday&to=2025-01-31T14:00").is_err());
    }
}
