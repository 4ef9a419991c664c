//! The dead jobs page (`/ui/dead`): dead jobs newest first, by queue, with requeue and
//! purge of one job, of the jobs ticked, or of every dead job of a queue, each after a
//! confirmation.
//!
//! Actions are `POST /ui/dead/requeue` and `/ui/dead/purge` with the ids (`id`, repeated)
//! or a queue (`scope=queue&queue=...`) in the query or a form body; the answer is the
//! table again with a message saying how many jobs moved.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use errand_core::{JobId, JobState, QueueName};
use errand_store::DeadSelection;

use super::jobs::{table, Filters, Table};
use super::view::count;
use super::{render, Dashboard, Layout, Topic};
use crate::extract::{job_id, ApiQuery};
use crate::{ApiError, AppState};

/// Ids one action may name: a page of ticks is 50; the API takes more, but a form that
/// names thousands is a mistake.
const MAX_IDS: usize = 1000;

/// A queue's dead jobs in total, for "all of the queue" buttons.
struct QueueDead {
    name: String,
    dead: String,
    any: bool,
}

/// What the table shows: the page, the queue filter, the queue's total.
struct DeadView {
    table: Table,
    queue: String,
    queue_dead: Option<QueueDead>,
    /// After an action: what it did.
    flash: Option<String>,
}

/// `templates/dead.html`.
#[derive(Template)]
#[template(path = "dead.html")]
struct DeadPage {
    layout: Layout,
    queues: Vec<String>,
    view: DeadView,
}

/// `templates/dead_rows.html`.
#[derive(Template)]
#[template(path = "dead_rows.html")]
struct DeadRows {
    view: DeadView,
}

async fn read(state: &AppState, filters: &Filters) -> Result<DeadView, ApiError> {
    let mut filters = filters.clone();
    filters.state.clear();
    let table = table(state, &filters, "/ui/dead", "/ui/dead/rows", |p| {
        p.state = Some(JobState::Dead)
    })
    .await?;
    let queue = filters.queue.trim().to_string();
    let queue_dead = match QueueName::parse(&queue) {
        Ok(name) if !queue.is_empty() => match state.engine.queue_get(&name).await {
            Ok(q) => Some(QueueDead {
                name: queue.clone(),
                dead: count(q.counts.dead),
                any: q.counts.dead > 0,
            }),
            Err(errand_store::StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        _ => None,
    };
    Ok(DeadView {
        table,
        queue,
        queue_dead,
        flash: None,
    })
}

/// `GET /ui/dead`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(filters): ApiQuery<Filters>,
) -> Response {
    // The live generation before the data: a change in between reaches the tab.
    let layout = dash.layout("Dead jobs", "/ui/dead", &[Topic::Dead]);
    let queues = match state.engine.queue_list().await {
        Ok(q) => q.into_iter().map(|q| q.name.to_string()).collect(),
        Err(e) => return dash.error_page(e.into()),
    };
    match read(&state, &filters).await {
        Ok(view) => dash.page(&DeadPage {
            layout,
            queues,
            view,
        }),
        Err(e) => dash.error_page(e),
    }
}

/// `GET /ui/dead/rows`.
pub(crate) async fn rows(
    State(state): State<AppState>,
    ApiQuery(filters): ApiQuery<Filters>,
) -> Result<Response, ApiError> {
    let view = read(&state, &filters).await?;
    Ok(render(StatusCode::OK, &DeadRows { view }))
}

/// What an action names, read from the query and the form body.
#[derive(Debug, PartialEq)]
struct Action {
    selection: DeadSelection,
    /// The queue filter the table is shown with.
    view_queue: String,
}

fn action(query: Option<&str>, body: &[u8]) -> Result<Action, ApiError> {
    let mut ids: Vec<JobId> = Vec::new();
    let mut scope = String::new();
    let mut queue = String::new();
    let mut view_queue = String::new();
    let pairs = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .chain(url::form_urlencoded::parse(body));
    for (k, v) in pairs {
        match k.as_ref() {
            "id" => {
                if ids.len() >= MAX_IDS {
                    return Err(ApiError::invalid(format!(
                        "id: at most {MAX_IDS} jobs at once"
                    )));
                }
                ids.push(job_id(&v)?);
            }
            "scope" => scope = v.into_owned(),
            "queue" => queue = v.into_owned(),
            "view_queue" => view_queue = v.into_owned(),
            // Other fields of the page's form (filters) are not the action's.
            _ => {}
        }
    }
    let selection = match scope.as_str() {
        "queue" => DeadSelection::Queue(QueueName::parse(&queue)?),
        "" | "ids" if !ids.is_empty() => DeadSelection::Ids { ids, queue: None },
        "" | "ids" => return Err(ApiError::invalid("tick at least one dead job")),
        other => {
            return Err(ApiError::invalid(format!(
                "scope: `{other}` is not ids or queue"
            )))
        }
    };
    Ok(Action {
        selection,
        view_queue,
    })
}

async fn act(
    state: AppState,
    dash: &Dashboard,
    query: Option<String>,
    body: Bytes,
    purge: bool,
) -> Result<Response, ApiError> {
    let Action {
        selection,
        view_queue,
    } = action(query.as_deref(), &body)?;
    let n = if purge {
        state.engine.dead_purge(selection).await?
    } else {
        state.engine.dead_requeue(selection).await?
    };
    dash.touch(&[Topic::Dead, Topic::Queues, Topic::Jobs]);
    let mut view = read(
        &state,
        &Filters {
            queue: view_queue,
            ..Filters::default()
        },
    )
    .await?;
    let verb = if purge { "Purged" } else { "Requeued" };
    view.flash = Some(format!(
        "{verb} {} dead job{}.",
        count(n),
        if n == 1 { "" } else { "s" }
    ));
    Ok(render(StatusCode::OK, &DeadRows { view }))
}

/// `POST /ui/dead/requeue`: makes the named dead jobs available again.
pub(crate) async fn requeue(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    act(state, &dash, query, body, false).await
}

/// `POST /ui/dead/purge`: deletes the named dead jobs and their attempts.
pub(crate) async fn purge(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    act(state, &dash, query, body, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_name_ids_or_a_queue() {
        let a = JobId::new();
        let b = JobId::new();
        let got = action(
            Some(&format!("id={a}&view_queue=q")),
            format!("id={b}&queue=ignored").as_bytes(),
        )
        .unwrap();
        assert_eq!(
            got,
            Action {
                selection: DeadSelection::Ids {
                    ids: vec![a, b],
                    queue: None
                },
                view_queue: "q".into()
            }
        );
        let got = action(Some("scope=queue&queue=mail"), b"").unwrap();
        assert_eq!(
            got.selection,
            DeadSelection::Queue(QueueName::parse("mail").unwrap())
        );
        assert!(action(None, b"").is_err(), "nothing named");
        assert!(action(Some("scope=all"), b"").is_err());
        assert!(action(Some("id=nope"), b"").is_err());
        assert!(action(Some("scope=queue"), b"").is_err(), "no queue");
    }
}
