//! The workflows pages: `/ui/workflows`, newest first by state with cursor pages (what
//! `GET /v1/workflows` answers), and `/ui/workflows/{id}`, one workflow with its steps
//! drawn in layers by depth (parents above children, as `errand workflows show` draws
//! them, from [`errand_core::workflow::step_depths`]), each step's state and job; cancel
//! and retry go through the routes of `POST /v1/workflows/{id}/cancel` and `/retry`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::Response;
use axum::Extension;
use errand_api::WorkflowListQuery;
use errand_core::workflow::{step_depths, Workflow, WorkflowState};
use jiff::Timestamp;
use serde::Deserialize;

use super::view::{between, pretty_json, query_url, truncate, When};
use super::{render, Dashboard, Layout, Topic};
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::workflows as api;
use crate::{ApiError, AppState};

/// Workflows a page.
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

/// A workflow as a row.
struct WorkflowRow {
    id: String,
    href: String,
    name: String,
    template: String,
    state: &'static str,
    progress: String,
    failed_step: String,
    created: When,
    ended: Option<When>,
}

/// `templates/workflows.html`.
#[derive(Template)]
#[template(path = "workflows.html")]
struct WorkflowsPage {
    layout: Layout,
    states: Vec<&'static str>,
    state: String,
    rows: Vec<WorkflowRow>,
    first_href: Option<String>,
    next_href: Option<String>,
}

/// `GET /ui/workflows`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
    ApiQuery(f): ApiQuery<Filters>,
) -> Response {
    let none = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let limit = f.limit.unwrap_or(PAGE);
    let q = WorkflowListQuery {
        state: none(&f.state),
        template: None,
        before: none(&f.before),
        limit: Some(limit),
    };
    let list = match api::list(State(state), ApiQuery(q)).await {
        Ok(list) => list.0,
        Err(e) => return dash.error_page(e),
    };
    let now = Timestamp::now();
    let page_url = |before: String| {
        query_url(
            "/ui/workflows",
            &[
                ("state", f.state.clone()),
                ("before", before),
                (
                    "limit",
                    if limit == PAGE {
                        String::new()
                    } else {
                        limit.to_string()
                    },
                ),
            ],
        )
    };
    dash.page(&WorkflowsPage {
        layout: dash.live_page_layout("Workflows", "/ui/workflows", &uri, &[Topic::Jobs], false),
        states: WorkflowState::ALL.iter().map(|s| s.as_str()).collect(),
        rows: list
            .workflows
            .iter()
            .map(|w| WorkflowRow {
                id: w.id.to_string(),
                href: format!("/ui/workflows/{}", w.id),
                name: w.name.clone().unwrap_or_default(),
                template: w.template.clone().unwrap_or_default(),
                state: w.state.as_str(),
                progress: format!("{} / {}", w.steps_succeeded, w.steps),
                failed_step: w.failed_step.clone().unwrap_or_default(),
                created: When::of(w.created_at, now),
                ended: When::maybe(w.ended_at, now),
            })
            .collect(),
        first_href: (!f.before.is_empty()).then(|| page_url(String::new())),
        next_href: list.next.map(|id| page_url(id.to_string())),
        state: f.state,
    })
}

/// A step as a box of its layer.
struct StepBox {
    name: String,
    state: &'static str,
    job_href: String,
    job_id: String,
    kind: String,
    queue: String,
    attempts: String,
    depends_on: String,
    took: Option<String>,
    error: String,
    compensation: Option<(&'static str, String)>,
}

/// The detail of one workflow: what `workflow.html` and `workflow_body.html` show.
struct WorkflowView {
    id: String,
    name: String,
    template: String,
    state: &'static str,
    running: bool,
    retryable: bool,
    failed_step: String,
    error: String,
    retries: u32,
    created: When,
    updated: When,
    ended: Option<When>,
    input: String,
    layers: Vec<Vec<StepBox>>,
    flash: Option<String>,
}

impl WorkflowView {
    fn of(wf: &Workflow, flash: Option<String>) -> Self {
        let now = Timestamp::now();
        let depth = step_depths(&wf.steps);
        let count = depth.iter().copied().max().map_or(0, |m| m + 1);
        let mut layers: Vec<Vec<StepBox>> = (0..count).map(|_| Vec::new()).collect();
        for (s, d) in wf.steps.iter().zip(&depth) {
            layers[*d].push(StepBox {
                name: s.name.clone(),
                state: s.state.as_str(),
                job_href: format!("/ui/jobs/{}", s.job_id),
                job_id: s.job_id.to_string(),
                kind: s.kind.to_string(),
                queue: s.queue.to_string(),
                attempts: format!("{} / {}", s.attempt, s.max_attempts),
                depends_on: s.depends_on.join(", "),
                took: between(s.started_at, s.finished_at),
                error: s
                    .error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .map(|l| truncate(l, 200))
                    .unwrap_or_default(),
                compensation: s
                    .compensation
                    .as_ref()
                    .map(|c| (c.state.as_str(), format!("/ui/jobs/{}", c.job_id))),
            });
        }
        Self {
            id: wf.id.to_string(),
            name: wf.name.clone().unwrap_or_default(),
            template: wf.template.clone().unwrap_or_default(),
            state: wf.state.as_str(),
            running: wf.state == WorkflowState::Running,
            retryable: wf.state.is_final() && wf.state != WorkflowState::Succeeded,
            failed_step: wf.failed_step.clone().unwrap_or_default(),
            error: wf.error.clone().unwrap_or_default(),
            retries: wf.retries,
            created: When::of(wf.created_at, now),
            updated: When::of(wf.updated_at, now),
            ended: When::maybe(wf.ended_at, now),
            input: pretty_json(&wf.input),
            layers,
            flash,
        }
    }
}

/// `templates/workflow.html`.
#[derive(Template)]
#[template(path = "workflow.html")]
struct WorkflowPage {
    layout: Layout,
    view: WorkflowView,
}

/// `templates/workflow_body.html`: what an action answers.
#[derive(Template)]
#[template(path = "workflow_body.html")]
struct WorkflowBody {
    view: WorkflowView,
}

/// `GET /ui/workflows/{id}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match api::get(State(state), ApiPath(id)).await {
        Ok(wf) => dash.page(&WorkflowPage {
            layout: dash.live_page_layout(
                format!("Workflow {}", wf.0.id),
                "/ui/workflows",
                &uri,
                &[Topic::Jobs],
                false,
            ),
            view: WorkflowView::of(&wf.0, None),
        }),
        Err(e) => dash.error_page(e),
    }
}

/// `POST /ui/workflows/{id}/cancel`: answers the workflow's body.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let wf = api::cancel(State(state), ApiPath(id)).await?.0;
    dash.touch(&[Topic::Jobs, Topic::Queues]);
    Ok(render(
        StatusCode::OK,
        &WorkflowBody {
            view: WorkflowView::of(
                &wf,
                Some("Cancelled: steps not started are cancelled.".into()),
            ),
        },
    ))
}

/// `POST /ui/workflows/{id}/retry`: answers the workflow's body.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let wf = api::retry(State(state), ApiPath(id)).await?.0;
    dash.touch(&[Topic::Jobs, Topic::Queues, Topic::Dead]);
    Ok(render(
        StatusCode::OK,
        &WorkflowBody {
            view: WorkflowView::of(&wf, Some("Running again from the failed steps.".into())),
        },
    ))
}
