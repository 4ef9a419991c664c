//! `/v1/schedules`: recurring work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use errand_api::{
    BackfillRequest, BatchEnqueueResponse, EnqueuedJob, ErrorBody, NextFireTimes, NextQuery,
    ScheduleList, SchedulePutRequest, ScheduleRequest,
};
use errand_core::schedule_spec::Schedule;
use errand_core::{Job, ScheduleName};
use errand_store::SchedulePut;
use serde_json::{json, Value};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// Most fire times one preview lists.
const MAX_PREVIEW: usize = 1000;

fn name(raw: &str) -> Result<ScheduleName, ApiError> {
    ScheduleName::parse(raw).map_err(|e| ApiError::invalid(format!("name: {}", e.message)))
}

/// Creates a schedule; its first slot is the next one from now.
#[utoipa::path(post, path = "/v1/schedules", operation_id = "create_schedule", tag = "schedules",
    request_body = ScheduleRequest,
    responses((status = 201, description = "Created", body = Schedule), (status = 400, description = "Bad cron, zone, window...", body = ErrorBody), (status = 409, description = "The name is taken", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> Result<(StatusCode, Json<Schedule>), ApiError> {
    refuse_owned_name(&req.name)?;
    let spec = req.into_spec(&state.enqueue_limits())?;
    Ok((
        StatusCode::CREATED,
        Json(state.engine.schedule_put(spec, SchedulePut::Create).await?),
    ))
}

/// Every schedule with its last fire, last job's state and next fire time.
#[utoipa::path(get, path = "/v1/schedules", operation_id = "list_schedules", tag = "schedules",
    responses((status = 200, description = "By name", body = ScheduleList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(ScheduleList {
        schedules: state.engine.schedule_list().await?,
    }))
}

/// One schedule.
#[utoipa::path(get, path = "/v1/schedules/{name}", operation_id = "get_schedule", tag = "schedules",
    params(("name" = errand_core::ScheduleName, Path, description = "Schedule name")),
    responses((status = 200, description = "The schedule", body = Schedule), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(state.engine.schedule_get(&name(&raw)?).await?))
}

/// Creates or replaces a schedule (declarative: the same body twice changes nothing). The
/// path names it: the body's `name` may be left out, and one that differs is refused.
#[utoipa::path(put, path = "/v1/schedules/{name}", operation_id = "put_schedule", tag = "schedules",
    params(("name" = errand_core::ScheduleName, Path, description = "Schedule name")),
    request_body = SchedulePutRequest,
    responses((status = 200, description = "Stored", body = Schedule), (status = 400, description = "Bad cron, zone, window..., or a body `name` that is not the path's", body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<SchedulePutRequest>,
) -> Result<Json<Schedule>, ApiError> {
    let req = req.for_path(&raw)?;
    refuse_owned_name(&req.name)?;
    let spec = req.into_spec(&state.enqueue_limits())?;
    Ok(Json(state.engine.schedule_declare(spec).await?))
}

/// Schedules named `definition:...` belong to job definitions, which declare and delete
/// them; one made by hand would be taken over or deleted by a node.
fn refuse_owned_name(name: &str) -> Result<(), ApiError> {
    if name.starts_with(crate::scripts::OWNED_PREFIX) {
        return Err(ApiError::invalid(format!(
            "name: `{name}`: names starting with `{}` are kept for the schedules of job definitions (job.toml `schedule`)",
            crate::scripts::OWNED_PREFIX
        )));
    }
    Ok(())
}

/// Deletes a schedule; the jobs it fired stay.
#[utoipa::path(delete, path = "/v1/schedules/{name}", operation_id = "delete_schedule", tag = "schedules",
    params(("name" = errand_core::ScheduleName, Path, description = "Schedule name")),
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let n = name(&raw)?;
    state.engine.schedule_delete(&n).await?;
    Ok(Json(json!({"deleted": n})))
}

/// Runs the schedule's job now, outside its slots, under its overlap policy; the run
/// becomes the schedule's last job.
#[utoipa::path(post, path = "/v1/schedules/{name}/trigger", operation_id = "trigger_schedule", tag = "schedules",
    params(("name" = errand_core::ScheduleName, Path, description = "Schedule name")),
    responses((status = 201, description = "Enqueued (with `replace`, the running job was cancelled)", body = Job), (status = 404, body = ErrorBody), (status = 409, description = "A run is in progress and the overlap policy (skip, buffer_one) forbids a second (`conflict`), or scheduler passes kept moving the schedule (`contended`, retry)", body = ErrorBody)))]
pub(crate) async fn trigger(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.engine.schedule_trigger(&name(&raw)?).await?),
    ))
}

/// Stops firing; slots missed while paused follow the catch-up policy on resume.
#[utoipa::path(post, path = "/v1/schedules/{name}/pause", operation_id = "pause_schedule", tag = "schedules",
    params(("name" = errand_core::ScheduleName, Path, description = "Schedule name")),
    responses((status = 200, description = "Paused", body = Schedule), (status = 404, body = ErrorBody)))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(state.engine.schedule_pause(&name(&raw)?).await?))
}

/// Fires again.
#[utoipa::path(post, path = "/v1/schedules/{name}/resume", operation_id = "resume_schedule", tag = "schedules",
    params(("name" = errand_core::ScheduleName, Path, description = "Schedule name")),
    responses((status = 200, description = "Resumed", body = Schedule), (status = 404, body = ErrorBody)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(state.engine.schedule_resume(&name(&raw)?).await?))
}

/// The next fire times.
#[utoipa::path(get, path = "/v1/schedules/{name}/next", operation_id = "list_schedule_fire_times", tag = "schedules",
    params(("name" = errand_core::ScheduleName, Path, description = "Schedule name"), NextQuery),
    responses((status = 200, description = "Fire times", body = NextFireTimes), (status = 404, body = ErrorBody)))]
pub(crate) async fn next(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Result<Json<NextFireTimes>, ApiError> {
    let count = q.count.unwrap_or(10);
    if !(1..=MAX_PREVIEW).contains(&count) {
        return Err(ApiError::invalid(format!(
            "count: must be between 1 and {MAX_PREVIEW}"
        )));
    }
    Ok(Json(NextFireTimes {
        next: state.engine.schedule_next(&name(&raw)?, count).await?,
    }))
}

/// Runs every slot of a past range that has no job yet (at most 1,000 slots, starting at
/// most 7 days back).
#[utoipa::path(post, path = "/v1/schedules/{name}/backfill", operation_id = "backfill_schedule", tag = "schedules",
    params(("name" = errand_core::ScheduleName, Path, description = "Schedule name")),
    request_body = BackfillRequest,
    responses((status = 201, description = "Jobs enqueued", body = BatchEnqueueResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "contended: scheduler passes kept moving the schedule; retry", body = ErrorBody), (status = 503, description = "Store unavailable; retry", body = ErrorBody)))]
pub(crate) async fn backfill(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<BackfillRequest>,
) -> Result<(StatusCode, Json<BatchEnqueueResponse>), ApiError> {
    if req.from >= req.to {
        return Err(ApiError::invalid("from: must be before to"));
    }
    let fired = state
        .engine
        .schedule_backfill(&name(&raw)?, req.from, req.to)
        .await?;
    let jobs: Vec<EnqueuedJob> = fired
        .iter()
        .map(|j| EnqueuedJob {
            id: j.id,
            state: j.state,
            inserted: true,
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(BatchEnqueueResponse {
            inserted: jobs.len(),
            jobs,
        }),
    ))
}
