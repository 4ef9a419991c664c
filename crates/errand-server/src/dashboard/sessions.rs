//! The sessions page (`/ui/sessions`): ordered sessions by key with their length, head,
//! the dead job blocking one, and their state (what `GET /v1/sessions` answers), a page of
//! keys at a time; unblocking goes through the route of `POST /v1/sessions/{key}/unblock`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::Response;
use axum::Extension;
use errand_api::SessionListQuery;
use jiff::Timestamp;
use serde::Deserialize;

use super::view::{query_url, truncate, When};
use super::{render, Dashboard, Layout, Topic};
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::sessions as api;
use crate::{ApiError, AppState};

/// Sessions a page.
const PAGE: u32 = 100;

/// The list's filters, as the form sends them.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    blocked: Option<String>,
    #[serde(default)]
    after: String,
}

/// A session as a row.
struct SessionRow {
    key: String,
    length: u64,
    version: u64,
    head: Option<(String, String)>,
    blocked_by: Option<(String, String)>,
    state: String,
    updated: When,
    unblock_url: String,
}

/// The table and, after an action, what it did.
struct SessionsView {
    blocked: bool,
    rows: Vec<SessionRow>,
    first_href: Option<String>,
    next_href: Option<String>,
    flash: Option<String>,
}

/// `templates/sessions.html`.
#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    layout: Layout,
    view: SessionsView,
}

/// `templates/sessions_rows.html`.
#[derive(Template)]
#[template(path = "sessions_rows.html")]
struct SessionsRows {
    view: SessionsView,
}

fn job_link(id: Option<errand_core::JobId>) -> Option<(String, String)> {
    id.map(|id| (id.to_string(), format!("/ui/jobs/{id}")))
}

async fn read(
    state: &AppState,
    f: Filters,
    flash: Option<String>,
) -> Result<SessionsView, ApiError> {
    let blocked = f
        .blocked
        .as_deref()
        .is_some_and(|b| !b.is_empty() && b != "false");
    let q = SessionListQuery {
        after: (!f.after.is_empty()).then(|| f.after.clone()),
        limit: Some(PAGE),
        blocked: blocked.then_some(true),
    };
    let list = api::list(State(state.clone()), ApiQuery(q)).await?.0;
    let now = Timestamp::now();
    let page_url = |after: String| {
        query_url(
            "/ui/sessions",
            &[
                (
                    "blocked",
                    if blocked {
                        "true".into()
                    } else {
                        String::new()
                    },
                ),
                ("after", after),
            ],
        )
    };
    Ok(SessionsView {
        blocked,
        rows: list
            .sessions
            .iter()
            .map(|s| SessionRow {
                key: s.key.clone(),
                length: s.length,
                version: s.version,
                head: job_link(s.head),
                blocked_by: job_link(s.blocked_by),
                state: if s.state.is_null() {
                    String::new()
                } else {
                    truncate(&s.state.to_string(), 200)
                },
                updated: When::of(s.updated_at, now),
                // The key rides in the query, not the path: a key such as `..` would be
                // folded away by the browser as a path segment.
                unblock_url: query_url("/ui/sessions/unblock", &[("key", s.key.clone())]),
            })
            .collect(),
        first_href: (!f.after.is_empty()).then(|| page_url(String::new())),
        next_href: list.next_after.map(page_url),
        flash,
    })
}

/// `GET /ui/sessions`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
    ApiQuery(f): ApiQuery<Filters>,
) -> Response {
    match read(&state, f, None).await {
        Ok(view) => dash.page(&SessionsPage {
            layout: dash.live_page_layout("Sessions", "/ui/sessions", &uri, &[Topic::Jobs], false),
            view,
        }),
        Err(e) => dash.error_page(e),
    }
}

/// The session an unblock names.
#[derive(Debug, Deserialize)]
pub(crate) struct UnblockQuery {
    key: String,
}

/// `POST /ui/sessions/unblock?key=...`: lets a session stuck behind a dead job go on;
/// answers the table's first page.
pub(crate) async fn unblock(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(UnblockQuery { key }): ApiQuery<UnblockQuery>,
) -> Result<Response, ApiError> {
    let _unblocked = api::unblock(State(state.clone()), ApiPath(key.clone())).await?;
    dash.touch(&[Topic::Jobs, Topic::Queues]);
    Ok(render(
        StatusCode::OK,
        &SessionsRows {
            view: read(
                &state,
                Filters::default(),
                Some(format!("Unblocked {key}.")),
            )
            .await?,
        },
    ))
}
