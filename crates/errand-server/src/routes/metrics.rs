//! `GET /metrics`: this node's Prometheus metrics, served on every node (with or without
//! the `api` role) because Prometheus scrapes each node for what it did.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// This node's metrics in the Prometheus text format, version 0.0.4: what it did
/// (counters and histograms since it started), its identity, and the queues' figures read
/// from the store now. docs/observability.md lists every metric.
#[utoipa::path(get, path = "/metrics", operation_id = "get_metrics", tag = "metrics",
    responses((status = 200, description = "The metrics, in the Prometheus text format (`text/plain; version=0.0.4`). When the store cannot be read, the queue gauges are missing and `errand_queue_stats_ok` is 0; the rest is there",
        content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state.engine.metrics_text().await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the metrics could not be encoded",
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, errand_engine::METRICS_CONTENT_TYPE)],
        text,
    )
        .into_response())
}
