//! `/v1/batches`: many jobs enqueued as one, with one `on_complete` job (and callback) when
//! every job has ended; jobs added while open; closing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use errand_api::{
    BatchJobsRequest, BatchList, BatchListQuery, BatchRequest, BatchResponse, EnqueuedJob,
    ErrorBody,
};
use errand_core::batch::{Batch, BatchState};
use errand_core::BatchId;
use errand_store::{BatchListParams, BatchWrite};

use super::jobs::{DEFAULT_PAGE, MAX_PAGE};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

fn batch_id(raw: &str) -> Result<BatchId, ApiError> {
    raw.parse::<BatchId>()
        .map_err(|_| ApiError::invalid(format!("id: `{raw}` is not a batch id")))
}

fn response(out: BatchWrite) -> BatchResponse {
    BatchResponse {
        batch: out.batch,
        jobs: out
            .jobs
            .into_iter()
            .map(|r| EnqueuedJob {
                id: r.job.id,
                state: r.job.state,
                inserted: r.inserted,
            })
            .collect(),
    }
}

/// Creates a batch with its jobs (closed unless `open`: a closed batch completes when its
/// last job ends, at once if it has none).
#[utoipa::path(post, path = "/v1/batches", operation_id = "create_batch", tag = "batches",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "Stored durably", body = BatchResponse),
        (status = 400, description = "Bad input (the first bad job is named), or a `callback_url` without a webhook secret configured; nothing stored", body = ErrorBody),
        (status = 404, description = "A job's `after` names an unknown job; nothing stored", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let (batch, jobs) = req.into_batch(&state.enqueue_limits())?;
    if batch.callback_url.is_some() {
        super::subscriptions::require_signing(&state, "callback_url")?;
    }
    if jobs.iter().any(|j| j.notify.callback_url.is_some()) {
        super::subscriptions::require_signing(&state, "callback_url")?;
    }
    let out = state.engine.batch_create(batch, jobs).await?;
    Ok((StatusCode::CREATED, Json(response(out))))
}

/// Adds jobs to an open batch.
#[utoipa::path(post, path = "/v1/batches/{id}/jobs", operation_id = "add_batch_jobs", tag = "batches",
    params(("id" = BatchId, Path, description = "Batch id")),
    request_body = BatchJobsRequest,
    responses(
        (status = 200, description = "Stored durably", body = BatchResponse),
        (status = 400, description = "Bad input (the first bad job is named); nothing stored", body = ErrorBody),
        (status = 404, description = "No such batch, or an `after` job is unknown", body = ErrorBody),
        (status = 409, description = "The batch is closed", body = ErrorBody)))]
pub(crate) async fn add_jobs(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<BatchJobsRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let id = batch_id(&raw)?;
    let jobs = req.into_jobs(id, &state.enqueue_limits())?;
    if jobs.iter().any(|j| j.notify.callback_url.is_some()) {
        super::subscriptions::require_signing(&state, "callback_url")?;
    }
    Ok(Json(response(state.engine.batch_add(id, jobs).await?)))
}

/// Closes an open batch: no more jobs; it completes when its last job ends (at once if none
/// is pending). Closing a closed or completed batch changes nothing.
#[utoipa::path(post, path = "/v1/batches/{id}/close", operation_id = "close_batch", tag = "batches",
    params(("id" = BatchId, Path, description = "Batch id")),
    responses((status = 200, description = "Closed (or completed)", body = Batch), (status = 404, body = ErrorBody)))]
pub(crate) async fn close(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(state.engine.batch_close(batch_id(&raw)?).await?))
}

/// One batch with its counts by how its jobs ended.
#[utoipa::path(get, path = "/v1/batches/{id}", operation_id = "get_batch", tag = "batches",
    params(("id" = BatchId, Path, description = "Batch id")),
    responses((status = 200, description = "The batch", body = Batch), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(state.engine.batch_get(batch_id(&raw)?).await?))
}

/// Lists batches, newest first.
#[utoipa::path(get, path = "/v1/batches", operation_id = "list_batches", tag = "batches",
    params(BatchListQuery),
    responses((status = 200, description = "A page", body = BatchList), (status = 400, description = "Bad filter", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BatchListQuery>,
) -> Result<Json<BatchList>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    let params = BatchListParams {
        state: q.state.as_deref().map(BatchState::parse).transpose()?,
        before: q.before.as_deref().map(batch_id).transpose()?,
        limit,
    };
    let batches = state.engine.batch_list(params).await?;
    let next = (batches.len() == limit as usize)
        .then(|| batches.last().map(|b| b.id))
        .flatten();
    Ok(Json(BatchList { batches, next }))
}
