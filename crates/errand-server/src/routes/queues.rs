//! `/v1/queues`: counts, settings, pause and resume.

use axum::extract::State;
use axum::Json;
use errand_api::{ErrorBody, QueueList};
use errand_core::{QueueInfo, QueueName};

use errand_core::queue::QueueSettingsPatch;

use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// Every queue with its counts per state and the age of its oldest ready job.
#[utoipa::path(get, path = "/v1/queues", operation_id = "list_queues", tag = "queues",
    responses((status = 200, description = "Queues by name", body = QueueList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    Ok(Json(QueueList {
        queues: state.engine.queue_list().await?,
    }))
}

/// One queue.
#[utoipa::path(get, path = "/v1/queues/{queue}", operation_id = "get_queue", tag = "queues",
    params(("queue" = errand_core::QueueName, Path, description = "Queue name")),
    responses((status = 200, description = "The queue", body = QueueInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    let name = QueueName::parse(&name)?;
    Ok(Json(state.engine.queue_get(&name).await?))
}

/// Stops handing out the queue's jobs; enqueues still land.
#[utoipa::path(post, path = "/v1/queues/{queue}/pause", operation_id = "pause_queue", tag = "queues",
    params(("queue" = errand_core::QueueName, Path, description = "Queue name")),
    responses((status = 200, description = "Paused", body = QueueInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    let name = QueueName::parse(&name)?;
    Ok(Json(state.engine.queue_pause(&name).await?))
}

/// Hands out the queue's jobs again.
#[utoipa::path(post, path = "/v1/queues/{queue}/resume", operation_id = "resume_queue", tag = "queues",
    params(("queue" = errand_core::QueueName, Path, description = "Queue name")),
    responses((status = 200, description = "Resumed", body = QueueInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    let name = QueueName::parse(&name)?;
    Ok(Json(state.engine.queue_resume(&name).await?))
}

/// Changes the queue's settings: concurrency and rate across nodes, defaults for new jobs
/// (max attempts, priority, timeout, backoff), and pause. A field left out stays, `null`
/// removes it; the queue is created when missing. A bad value changes nothing.
#[utoipa::path(patch, path = "/v1/queues/{queue}", operation_id = "update_queue", tag = "queues",
    params(("queue" = errand_core::QueueName, Path, description = "Queue name")),
    request_body = QueueSettingsPatch,
    responses((status = 200, description = "The queue with its new settings", body = QueueInfo), (status = 400, description = "A bad value (a concurrency of 0, a rate of 0 or a period of 0); nothing changed", body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<QueueSettingsPatch>,
) -> Result<Json<QueueInfo>, ApiError> {
    let name = QueueName::parse(&name)?;
    patch.validate()?;
    Ok(Json(state.engine.queue_update(&name, patch).await?))
}
