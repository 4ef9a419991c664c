//! Liveness and readiness.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// The process is up and can work: 503 when something only a restart fixes has stopped
/// (the SQLite writer thread), so a supervisor restarts it. A store that is merely
/// unreachable leaves this at 200; that is `/readyz`.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "Alive"), (status = 503, description = "A part of the process that only a restart brings back has stopped", body = errand_api::ErrorBody)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.engine.live()?;
    Ok(Json(json!({"status": "ok"})))
}

/// This node can accept a job: the store answers and takes writes (on SQLite: the file
/// opened is still the one at its path, and writable; on PostgreSQL: the connection works
/// and the database is not read-only). An autoscaler or load balancer may send work.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses((status = 200, description = "Ready: the store takes writes"), (status = 503, description = "The store cannot accept a job: unreachable, read-only, or (SQLite) its file gone or replaced since start", body = errand_api::ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.engine.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
