//! The jobs page (`/ui/jobs`): find a job by id, or list jobs newest first filtered by
//! queue, state, kind and tag, a page at a time.
//!
//! Pages follow the API's cursor (`GET /v1/jobs`): each page is one indexed range read
//! that starts below the last id of the page before, so page 1 and page 10,000 cost the
//! same, with a million jobs or a billion. There is no total count and no "page N of M":
//! counting the matches would read every one of them.
//!
//! A state without a queue (the dead list across queues, "every running job") has no
//! index of its own: the store would walk jobs newest first until it found a page of
//! them. Instead the queues' counters (a few rows) say which queues hold jobs in that
//! state, and the page merges one indexed read per such queue ([`by_state`]).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use errand_api::JobListQuery;
use futures_util::StreamExt;
use jiff::Timestamp;
use serde::Deserialize;

use super::view::{query_url, state_names, JobRow};
use super::{render, Dashboard, Layout, Topic};
use crate::extract::ApiQuery;
use crate::routes::jobs::{list_params, page as list_page};
use crate::{ApiError, AppState};

/// Jobs per page: a screenful.
pub(crate) const PAGE: u32 = 50;

/// Per-queue reads of a state listing in flight at once: enough to hide a read's latency,
/// few enough that one tab does not take the store's whole connection pool.
const MERGE_READS_AT_ONCE: usize = 4;

/// The filters of the jobs and dead-jobs pages, as the search form sends them (an empty
/// field is no filter).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) queue: String,
    #[serde(default)]
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) tag: String,
    #[serde(default)]
    pub(crate) cursor: String,
}

impl Filters {
    fn opt(s: &str) -> Option<String> {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    }

    /// The API's listing query for these filters.
    pub(crate) fn query(&self) -> JobListQuery {
        JobListQuery {
            queue: Self::opt(&self.queue),
            state: Self::opt(&self.state),
            kind: Self::opt(&self.kind),
            tag: Self::opt(&self.tag),
            limit: Some(PAGE),
            cursor: Self::opt(&self.cursor),
        }
    }

    /// `path?filters` (with `cursor` when given).
    pub(crate) fn url(&self, path: &str, cursor: Option<String>) -> String {
        query_url(
            path,
            &[
                ("queue", self.queue.trim().to_string()),
                ("state", self.state.trim().to_string()),
                ("kind", self.kind.trim().to_string()),
                ("tag", self.tag.trim().to_string()),
                ("cursor", cursor.unwrap_or_default()),
            ],
        )
    }
}

/// A page of the table: rows, the links to the next and first page, or why there are none.
pub(crate) struct Table {
    pub(crate) rows: Vec<JobRow>,
    pub(crate) next_href: Option<String>,
    pub(crate) first_href: Option<String>,
    /// A filter that is not valid, in words.
    pub(crate) problem: Option<String>,
    /// Where the live region re-fetches this page.
    pub(crate) rows_url: String,
}

/// Reads one page of jobs under `filters`; `page_path` is the page (`/ui/jobs`) and
/// `rows_path` its fragment.
pub(crate) async fn table(
    state: &AppState,
    filters: &Filters,
    page_path: &str,
    rows_path: &str,
    mut adjust: impl FnMut(&mut errand_store::JobListParams),
) -> Result<Table, ApiError> {
    let now = Timestamp::now();
    let cursor = Filters::opt(&filters.cursor);
    let rows_url = filters.url(rows_path, cursor.clone());
    let first_href = cursor.is_some().then(|| filters.url(page_path, None));
    let mut params = match list_params(filters.query()) {
        Ok(p) => p,
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            return Ok(Table {
                rows: Vec::new(),
                next_href: None,
                first_href,
                problem: Some(e.message),
                rows_url,
            })
        }
        Err(e) => return Err(e),
    };
    adjust(&mut params);
    let page = match by_state(state, &params).await? {
        Some(page) => page,
        None => list_page(state, params).await?,
    };
    Ok(Table {
        rows: page.jobs.iter().map(|j| JobRow::of(j, now)).collect(),
        next_href: page
            .next_cursor
            .map(|c| filters.url(page_path, Some(c.to_string()))),
        first_href,
        problem: None,
        rows_url,
    })
}

/// A page of jobs in one state across queues, merged from one indexed read per queue that
/// holds jobs in that state (the queues' counters say which), however many they are: each
/// read is one indexed range of at most a page, where walking the primary key for a rare
/// state crosses every job (190 to 290 ms on a million); `None` when the listing is not of
/// a state alone.
async fn by_state(
    state: &AppState,
    params: &errand_store::JobListParams,
) -> Result<Option<errand_api::JobPage>, ApiError> {
    let Some(job_state) = params.state else {
        return Ok(None);
    };
    if params.queue.is_some() || params.kind.is_some() || params.tag.is_some() {
        return Ok(None);
    }
    let queues: Vec<_> = state
        .engine
        .queue_list()
        .await?
        .into_iter()
        .filter(|q| in_state(&q.counts, job_state) > 0)
        .map(|q| q.name)
        .collect();
    let limit = params.limit as usize;
    let mut reads = futures_util::stream::iter(queues.into_iter().map(|queue| {
        let mut one = params.clone();
        one.queue = Some(queue);
        async move { state.engine.list(one).await }
    }))
    .buffer_unordered(MERGE_READS_AT_ONCE);
    // Keeps the newest `limit` seen so far: memory stays at two pages.
    let mut jobs = Vec::with_capacity(limit * 2);
    while let Some(read) = reads.next().await {
        jobs.extend(read?);
        jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
        jobs.truncate(limit);
    }
    let next_cursor = (jobs.len() == limit)
        .then(|| jobs.last().map(|j| j.id))
        .flatten();
    Ok(Some(errand_api::JobPage { jobs, next_cursor }))
}

/// A queue's count of `s`.
fn in_state(c: &errand_core::StateCounts, s: errand_core::JobState) -> u64 {
    use errand_core::JobState as S;
    match s {
        S::Scheduled => c.scheduled,
        S::Available => c.available,
        S::Running => c.running,
        S::Succeeded => c.succeeded,
        S::Dead => c.dead,
        S::Cancelled => c.cancelled,
        S::Blocked => c.blocked,
    }
}

/// `templates/jobs.html`.
#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    layout: Layout,
    filters: Filters,
    queues: Vec<String>,
    states: Vec<&'static str>,
    table: Table,
}

/// `templates/jobs_rows.html`: the table and its pager, re-fetched when jobs change.
#[derive(Template)]
#[template(path = "jobs_rows.html")]
struct JobsRows {
    table: Table,
}

/// `GET /ui/jobs`: the search form and the first (or `cursor`'s) page; with `id`, the job's
/// page.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(filters): ApiQuery<Filters>,
) -> Response {
    let id = filters.id.trim();
    let mut filters = filters.clone();
    let mut problem = None;
    if !id.is_empty() {
        match crate::extract::job_id(id) {
            Ok(id) => return Redirect::to(&format!("/ui/jobs/{id}")).into_response(),
            Err(e) => problem = Some(e.message),
        }
    }
    // The live generation before the data: a change in between reaches the tab.
    let layout = dash.layout("Jobs", "/ui/jobs", &[Topic::Jobs]);
    let queues = match state.engine.queue_list().await {
        Ok(q) => q.into_iter().map(|q| q.name.to_string()).collect(),
        Err(e) => return dash.error_page(e.into()),
    };
    let mut table = match table(&state, &filters, "/ui/jobs", "/ui/jobs/rows", |_| {}).await {
        Ok(t) => t,
        Err(e) => return dash.error_page(e),
    };
    if table.problem.is_none() {
        table.problem = problem;
    }
    filters.cursor.clear();
    dash.page(&JobsPage {
        layout,
        filters,
        queues,
        states: state_names(),
        table,
    })
}

/// `GET /ui/jobs/rows`.
pub(crate) async fn rows(
    State(state): State<AppState>,
    ApiQuery(filters): ApiQuery<Filters>,
) -> Result<Response, ApiError> {
    let table = table(&state, &filters, "/ui/jobs", "/ui/jobs/rows", |_| {}).await?;
    Ok(render(StatusCode::OK, &JobsRows { table }))
}
