//! `GET /`: the dashboard's overview for browsers; what this server is and where to go next
//! for JSON clients.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use crate::dashboard::{overview_page, security_headers, Dashboard};
use crate::AppState;

/// What `GET /` answers as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RootInfo {
    /// Always `errand`.
    name: &'static str,
    /// The server's version.
    version: &'static str,
    /// The OpenAPI document of the HTTP API.
    openapi: &'static str,
    /// Liveness.
    health: &'static str,
    /// Readiness.
    ready: &'static str,
    /// Where the documentation is.
    docs: &'static str,
}

const INFO: RootInfo = RootInfo {
    name: "errand",
    version: env!("CARGO_PKG_VERSION"),
    openapi: "/v1/openapi.json",
    health: "/healthz",
    ready: "/readyz",
    docs: "docs/API.md and docs/cli.md in errand's source tree",
};

/// The dashboard's overview page (docs/dashboard.md); or, when the `Accept` header asks
/// for JSON and not HTML, the server's name and version with pointers to the OpenAPI
/// document, the health checks and the docs.
#[utoipa::path(get, path = "/", operation_id = "get_server_info", tag = "health",
    responses((status = 200, description = "The dashboard's overview page (HTML), or errand, its version, and pointers to the OpenAPI document, the health checks and the docs (JSON)",
        content((String = "text/html"), (RootInfo = "application/json")))))]
pub(crate) async fn root(
    State(state): State<AppState>,
    Extension(dashboard): Extension<Arc<Dashboard>>,
    caller: Option<Extension<crate::auth::Principal>>,
    headers: HeaderMap,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("application/json") && !accept.contains("text/html") {
        return Json(INFO).into_response();
    }
    // The JSON answer is public; the overview shows what `read` protects.
    let reader = caller
        .as_ref()
        .is_some_and(|Extension(p)| errand_core::Scope::Read.granted_by(&p.scopes));
    if state.auth.enabled && !reader {
        return axum::response::Redirect::to("/ui/login?next=%2F").into_response();
    }
    // The overview spans every queue, as the dashboard's other pages (which the guard
    // refuses to a token limited to some queues).
    if let Some(Extension(p)) = &caller {
        if state.auth.enabled && !p.queues.is_empty() {
            state.engine.note_auth_refused("forbidden");
            return crate::ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "the overview shows every queue; this token is limited to some",
            )
            .into_response();
        }
    }
    security_headers(overview_page(&state, &dashboard).await)
}
