//! `/v1/workers`: consumer liveness.

use axum::extract::State;
use axum::Json;
use errand_api::WorkerList;

use crate::{ApiError, AppState};

/// Workers seen claiming (name, node, queues and kinds, last claim, jobs in flight),
/// latest first; a worker unseen for a day is forgotten.
#[utoipa::path(get, path = "/v1/workers", operation_id = "list_workers", tag = "workers",
    responses((status = 200, description = "Latest claim first", body = WorkerList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<WorkerList>, ApiError> {
    Ok(Json(WorkerList {
        workers: state.engine.worker_list().await?,
    }))
}
