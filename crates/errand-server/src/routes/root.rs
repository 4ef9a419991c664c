//! `GET /`: what this server is and where to go next, until a dashboard lives here.

use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;

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

/// Names the server and points to the API's OpenAPI document, the health checks and the
/// docs: a small HTML page, or JSON when the `Accept` header asks for JSON and not HTML.
#[utoipa::path(get, path = "/", operation_id = "get_server_info", tag = "health",
    responses((status = 200, description = "errand, its version, and pointers to the OpenAPI document, the health checks and the docs",
        content((String = "text/html"), (RootInfo = "application/json")))))]
pub(crate) async fn root(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("application/json") && !accept.contains("text/html") {
        return Json(INFO).into_response();
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>errand {version}</title></head>\n<body>\n<h1>errand {version}</h1>\n<p>A background-jobs server. There is no dashboard here yet; the HTTP API lives under <code>/v1</code>.</p>\n<ul>\n<li><a href=\"{openapi}\">{openapi}</a>: the OpenAPI document of the API</li>\n<li><a href=\"{health}\">{health}</a> and <a href=\"{ready}\">{ready}</a>: liveness and readiness</li>\n<li>Documentation: {docs}; <code>errand --help</code> for the command line</li>\n</ul>\n</body></html>\n",
        version = INFO.version,
        openapi = INFO.openapi,
        health = INFO.health,
        ready = INFO.ready,
        docs = INFO.docs,
    ))
    .into_response()
}
