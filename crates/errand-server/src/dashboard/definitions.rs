//! The job definitions page (`/ui/definitions`): the definitions of this node's jobs
//! directory and the folders that did not load (what `GET /v1/definitions` answers), with
//! each continuous definition's instances; run now (triggered) and stop or start
//! (continuous) go through the routes of `POST /v1/definitions/{name}/run`, `/stop` and
//! `/start`. An instance's log is a plain page of its last lines, read through the route of
//! `GET /v1/definitions/{name}/instances/{instance}/logs`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::Response;
use axum::Extension;
use errand_api::{DefinitionList, InstanceLogQuery, RunDefinitionRequest, MAX_LOG_PAGE};
use errand_core::InstanceRecord;
use jiff::Timestamp;

use super::view::{duration_ms, When};
use super::{render, Dashboard, Layout, Topic};
use crate::extract::{ApiPath, ApiQuery, OptionalJson};
use crate::routes::{definitions as api, logs};
use crate::{ApiError, AppState};

/// Lines an instance's log page shows, the last ones.
const LOG_LINES: usize = 500;

/// A continuous instance as a line of its definition.
struct InstanceRow {
    id: String,
    node: String,
    state: &'static str,
    pid: String,
    restarts: u32,
    since: When,
    last_exit: String,
    logs_href: String,
}

/// A definition as a row.
struct DefinitionRow {
    name: String,
    continuous: bool,
    mode: String,
    kind: String,
    queue: String,
    command: String,
    schedule: String,
    stopped: bool,
    instances: Vec<InstanceRow>,
    /// Where its buttons post: `/ui/definitions/<name>/`.
    action_base: String,
}

/// A folder that did not load.
struct ProblemRow {
    name: String,
    file: String,
    reason: String,
}

/// The table and, after an action, what it did.
struct DefinitionsView {
    jobs_dir: String,
    rows: Vec<DefinitionRow>,
    problems: Vec<ProblemRow>,
    flash: Option<String>,
}

/// `templates/definitions.html`.
#[derive(Template)]
#[template(path = "definitions.html")]
struct DefinitionsPage {
    layout: Layout,
    view: DefinitionsView,
}

/// `templates/definitions_rows.html`.
#[derive(Template)]
#[template(path = "definitions_rows.html")]
struct DefinitionsRows {
    view: DefinitionsView,
}

fn instance_row(i: &InstanceRecord, now: Timestamp) -> InstanceRow {
    InstanceRow {
        id: i.instance.to_string(),
        node: i.node.to_string(),
        state: i.state.as_str(),
        pid: i.pid.map(|p| p.to_string()).unwrap_or_default(),
        restarts: i.restarts,
        since: When::of(i.since, now),
        last_exit: i
            .last_exit
            .as_ref()
            .and_then(|r| r.exit_code)
            .map(|c| format!("exit {c}"))
            .unwrap_or_default(),
        logs_href: format!(
            "/ui/definitions/{}/instances/{}/logs",
            i.definition, i.instance
        ),
    }
}

async fn read(state: &AppState, flash: Option<String>) -> Result<DefinitionsView, ApiError> {
    let now = Timestamp::now();
    let DefinitionList {
        jobs_dir,
        definitions,
        problems,
    } = api::list(State(state.clone())).await?.0;
    let instances = state.engine.instances(None).await?;
    Ok(DefinitionsView {
        jobs_dir: jobs_dir.unwrap_or_default(),
        rows: definitions
            .into_iter()
            .map(|d| DefinitionRow {
                action_base: format!("/ui/definitions/{}/", d.name),
                continuous: d.mode == "continuous",
                instances: instances
                    .iter()
                    .filter(|i| i.definition == d.name)
                    .map(|i| instance_row(i, now))
                    .collect(),
                schedule: d
                    .schedule
                    .map(|s| match (s.cron, s.every_ms) {
                        (Some(cron), _) => format!("cron {cron} ({})", s.timezone),
                        (None, Some(ms)) => format!("every {}", duration_ms(ms)),
                        (None, None) => String::new(),
                    })
                    .unwrap_or_default(),
                mode: d.mode,
                kind: d.kind,
                queue: d.queue,
                command: d.command.join(" "),
                stopped: d.stopped,
                name: d.name,
            })
            .collect(),
        problems: problems
            .into_iter()
            .map(|p| ProblemRow {
                name: p.name,
                file: p.file,
                reason: match p.key {
                    Some(k) => format!("{k}: {}", p.reason),
                    None => p.reason,
                },
            })
            .collect(),
        flash,
    })
}

/// `GET /ui/definitions`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
) -> Response {
    match read(&state, None).await {
        Ok(view) => dash.page(&DefinitionsPage {
            layout: dash.live_page_layout(
                "Job definitions",
                "/ui/definitions",
                &uri,
                &[Topic::Jobs],
                true,
            ),
            view,
        }),
        Err(e) => dash.error_page(e),
    }
}

async fn answer(state: &AppState, dash: &Dashboard, flash: String) -> Result<Response, ApiError> {
    dash.touch(&[Topic::Jobs, Topic::Queues]);
    Ok(render(
        StatusCode::OK,
        &DefinitionsRows {
            view: read(state, Some(flash)).await?,
        },
    ))
}

/// `POST /ui/definitions/{name}/run`: enqueues a run of a triggered definition now.
pub(crate) async fn run(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let (_, job) = api::run(
        State(state.clone()),
        ApiPath(name.clone()),
        OptionalJson(RunDefinitionRequest::default()),
    )
    .await?;
    answer(&state, &dash, format!("{name} runs now: job {}.", job.0.id)).await
}

/// `POST /ui/definitions/{name}/stop`: stops a continuous definition's instances.
pub(crate) async fn stop(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let _view = api::stop(State(state.clone()), ApiPath(name.clone())).await?;
    answer(&state, &dash, format!("Stopped {name}.")).await
}

/// `POST /ui/definitions/{name}/start`: starts a continuous definition again.
pub(crate) async fn start(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let _view = api::start(State(state.clone()), ApiPath(name.clone())).await?;
    answer(&state, &dash, format!("Started {name}.")).await
}

/// A line of an instance's log.
struct LogRow {
    place: String,
    at: When,
    stream: &'static str,
    text: String,
}

/// `templates/instance_logs.html`.
#[derive(Template)]
#[template(path = "instance_logs.html")]
struct InstanceLogsPage {
    layout: Layout,
    name: String,
    instance: String,
    lines: Vec<LogRow>,
    cut: bool,
}

/// `GET /ui/definitions/{name}/instances/{instance}/logs`: the last lines of an instance's
/// log, every restart, read page by page through the logs route.
pub(crate) async fn instance_logs(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
    ApiPath((name, instance)): ApiPath<(String, String)>,
) -> Response {
    let now = Timestamp::now();
    let mut lines = std::collections::VecDeque::new();
    let mut cut = false;
    let mut cursor = None;
    loop {
        let q = InstanceLogQuery {
            attempt: None,
            cursor: cursor.take(),
            limit: Some(MAX_LOG_PAGE),
        };
        let page = match logs::instance_logs(
            State(state.clone()),
            ApiPath((name.clone(), instance.clone())),
            ApiQuery(q),
        )
        .await
        {
            Ok(p) => p.0,
            Err(e) => return dash.error_page(e),
        };
        for l in page.lines {
            if lines.len() == LOG_LINES {
                lines.pop_front();
                cut = true;
            }
            lines.push_back(LogRow {
                place: format!("{}:{}", l.attempt, l.seq),
                at: When::of(l.at, now),
                stream: l.stream.as_str(),
                text: l.line,
            });
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    dash.page(&InstanceLogsPage {
        layout: dash.live_page_layout(
            format!("{name} instance log"),
            "/ui/definitions",
            &uri,
            &[],
            true,
        ),
        name,
        instance,
        lines: lines.into(),
        cut,
    })
}
