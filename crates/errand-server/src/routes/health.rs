//! Liveness and readiness.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive")))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers; an autoscaler or load balancer may send work.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, description = "Store unreachable", body = errand_api::ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.engine.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
