//! The batches pages: `/ui/batches`, newest first by state with cursor pages (what
//! `GET /v1/batches` answers), and `/ui/batches/{id}`, one batch with its jobs counted by
//! how they ended and its `on_complete` job; closing goes through the route of
//! `POST /v1/batches/{id}/close`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::Response;
use axum::Extension;
use errand_api::BatchListQuery;
use errand_core::batch::{Batch, BatchState};
use jiff::Timestamp;
use serde::Deserialize;

use super::view::{count, query_url, When};
use super::{render, Dashboard, Layout, Topic};
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::batches as api;
use crate::{ApiError, AppState};

/// Batches a page.
const PAGE: u32 = 50;

/// The list's filters, as the form sends them (empty means any).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    state: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    limit: Option<u32>,
}

/// A batch as the pages show it.
struct BatchView {
    id: String,
    href: String,
    state: &'static str,
    open: bool,
    total: String,
    pending: String,
    succeeded: String,
    dead: String,
    cancelled: String,
    /// The kind and queue of the job enqueued on completion.
    on_complete: Option<(String, String)>,
    /// That job, once enqueued: its id and page.
    on_complete_job: Option<(String, String)>,
    callback_url: String,
    created: When,
    closed: Option<When>,
    completed: Option<When>,
}

impl BatchView {
    fn of(b: &Batch, now: Timestamp) -> Self {
        Self {
            id: b.id.to_string(),
            href: format!("/ui/batches/{}", b.id),
            state: b.state.as_str(),
            open: b.state == BatchState::Open,
            total: count(b.counts.total),
            pending: count(b.counts.pending),
            succeeded: count(b.counts.succeeded),
            dead: count(b.counts.dead),
            cancelled: count(b.counts.cancelled),
            on_complete: b
                .on_complete
                .as_ref()
                .map(|t| (t.kind.to_string(), t.queue.to_string())),
            on_complete_job: b
                .on_complete_job_id
                .map(|id| (id.to_string(), format!("/ui/jobs/{id}"))),
            callback_url: b.callback_url.clone().unwrap_or_default(),
            created: When::of(b.created_at, now),
            closed: When::maybe(b.closed_at, now),
            completed: When::maybe(b.completed_at, now),
        }
    }
}

/// `templates/batches.html`.
#[derive(Template)]
#[template(path = "batches.html")]
struct BatchesPage {
    layout: Layout,
    states: Vec<&'static str>,
    state: String,
    rows: Vec<BatchView>,
    first_href: Option<String>,
    next_href: Option<String>,
}

/// `GET /ui/batches`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
    ApiQuery(f): ApiQuery<Filters>,
) -> Response {
    let none = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let limit = f.limit.unwrap_or(PAGE);
    let q = BatchListQuery {
        state: none(&f.state),
        before: none(&f.before),
        limit: Some(limit),
    };
    let list = match api::list(State(state), ApiQuery(q)).await {
        Ok(list) => list.0,
        Err(e) => return dash.error_page(e),
    };
    let now = Timestamp::now();
    let page_url = |before: String| {
        let limit = if limit == PAGE {
            String::new()
        } else {
            limit.to_string()
        };
        query_url(
            "/ui/batches",
            &[
                ("state", f.state.clone()),
                ("before", before),
                ("limit", limit),
            ],
        )
    };
    dash.page(&BatchesPage {
        layout: dash.live_page_layout("Batches", "/ui/batches", &uri, &[Topic::Jobs], false),
        states: [BatchState::Open, BatchState::Closed, BatchState::Completed]
            .iter()
            .map(|s| s.as_str())
            .collect(),
        rows: list.batches.iter().map(|b| BatchView::of(b, now)).collect(),
        first_href: (!f.before.is_empty()).then(|| page_url(String::new())),
        next_href: list.next.map(|id| page_url(id.to_string())),
        state: f.state,
    })
}

/// `templates/batch.html`.
#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    layout: Layout,
    b: BatchView,
    flash: Option<String>,
}

/// `templates/batch_body.html`: what closing answers.
#[derive(Template)]
#[template(path = "batch_body.html")]
struct BatchBody {
    b: BatchView,
    flash: Option<String>,
}

/// `GET /ui/batches/{id}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match api::get(State(state), ApiPath(id)).await {
        Ok(b) => dash.page(&BatchPage {
            layout: dash.live_page_layout(
                format!("Batch {}", b.0.id),
                "/ui/batches",
                &uri,
                &[Topic::Jobs],
                false,
            ),
            b: BatchView::of(&b.0, Timestamp::now()),
            flash: None,
        }),
        Err(e) => dash.error_page(e),
    }
}

/// `POST /ui/batches/{id}/close`: no more jobs; answers the batch's body.
pub(crate) async fn close(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let b = api::close(State(state), ApiPath(id)).await?.0;
    Ok(render(
        StatusCode::OK,
        &BatchBody {
            b: BatchView::of(&b, Timestamp::now()),
            flash: Some(format!(
                "Closed: the batch completes when its last job ends ({}).",
                b.state.as_str()
            )),
        },
    ))
}
