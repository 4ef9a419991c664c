//! One log line per HTTP request: method, route template, status and duration.
//!
//! The route is the matched template (`/v1/jobs/{id}`), never a payload, a query string or
//! a header (an `Authorization` header never reaches a log). Levels keep a busy server's log
//! readable at the default `info`: answers of 5xx are `warn`, 4xx `info`, and everything
//! else `debug`, with the concrete path (`ERRAND_LOG=info,errand::request=debug` shows every
//! request). At 10,000 requests a second an `info` line for each would be the bulk of the
//! server's work and of its log.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

/// The target of request lines, for filters (`errand::request=debug`).
const TARGET: &str = "errand::request";

/// Logs `req` once answered. A request no route matched logs route `-`.
pub(crate) async fn log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let path = tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
        .then(|| req.uri().path().to_string());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    // Microseconds are all a request line needs; more digits are noise in every line.
    let duration_ms = (start.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let route = route.as_ref().map_or("-", MatchedPath::as_str);
    let method = method.as_str();
    if status >= 500 {
        tracing::warn!(target: TARGET, method, route, status, duration_ms, "request");
    } else if status >= 400 {
        tracing::info!(target: TARGET, method, route, status, duration_ms, "request");
    } else {
        let path = path.as_deref().unwrap_or("");
        tracing::debug!(target: TARGET, method, route, path, status, duration_ms, "request");
    }
    response
}
