//! `/v1/dead`: the dead-letter set.

use axum::extract::State;
use axum::Json;
use errand_api::{CountResponse, DeadSelectionRequest, ErrorBody, JobListQuery, JobPage};
use errand_core::{JobState, QueueName};
use errand_store::DeadSelection;

use crate::extract::{ApiJson, ApiQuery};
use crate::routes::jobs::{list_params, page};
use crate::{ApiError, AppState};

/// Dead jobs, newest first; filters as for `/v1/jobs` (the state is always `dead`).
#[utoipa::path(get, path = "/v1/dead", operation_id = "list_dead_jobs", tag = "dead",
    params(JobListQuery),
    responses((status = 200, description = "A page of dead jobs", body = JobPage), (status = 400, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<JobListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    if q.state.as_deref().is_some_and(|s| s != "dead") {
        return Err(ApiError::invalid(
            "state: the dead list holds only dead jobs",
        ));
    }
    let mut params = list_params(q)?;
    params.state = Some(JobState::Dead);
    Ok(Json(page(&state, params).await?))
}

fn selection(req: DeadSelectionRequest) -> Result<DeadSelection, ApiError> {
    let queue = req.queue.as_deref().map(QueueName::parse).transpose()?;
    match (queue, req.ids.is_empty(), req.all) {
        (queue, false, false) => Ok(DeadSelection::Ids {
            ids: req.ids,
            queue,
        }),
        (Some(queue), true, false) => Ok(DeadSelection::Queue(queue)),
        (None, true, true) => Ok(DeadSelection::All),
        (None, true, false) => Err(ApiError::invalid(
            "name a queue, a list of ids, or set \"all\": true to select every dead job",
        )),
        (_, _, true) => Err(ApiError::invalid(
            "all: \"all\": true selects every dead job; it cannot be combined with a queue or ids",
        )),
    }
}

/// Makes the selected dead jobs available again, each with one more attempt.
#[utoipa::path(post, path = "/v1/dead/requeue", operation_id = "requeue_dead_jobs", tag = "dead",
    request_body = DeadSelectionRequest,
    responses((status = 200, description = "How many were requeued", body = CountResponse), (status = 400, body = ErrorBody)))]
pub(crate) async fn requeue(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DeadSelectionRequest>,
) -> Result<Json<CountResponse>, ApiError> {
    let count = state.engine.dead_requeue(selection(req)?).await?;
    Ok(Json(CountResponse { count }))
}

/// Deletes the selected dead jobs and their attempts.
#[utoipa::path(post, path = "/v1/dead/purge", operation_id = "purge_dead_jobs", tag = "dead",
    request_body = DeadSelectionRequest,
    responses((status = 200, description = "How many were deleted", body = CountResponse), (status = 400, body = ErrorBody)))]
pub(crate) async fn purge(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DeadSelectionRequest>,
) -> Result<Json<CountResponse>, ApiError> {
    let count = state.engine.dead_purge(selection(req)?).await?;
    Ok(Json(CountResponse { count }))
}
