//! `/v1/jobs`: enqueue, read, cancel, retry.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use errand_api::{
    AttemptList, BatchEnqueueRequest, BatchEnqueueResponse, EnqueueRequest, EnqueuedJob, ErrorBody,
    JobListQuery, JobPage, JobWaitQuery,
};
use errand_core::limits::MAX_WAIT_MS;
use errand_core::{duration, Job, JobKind, JobState, QueueName};
use errand_store::JobListParams;

use crate::auth::Principal;
use crate::extract::{job_id, ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// Header that carries an idempotency key, as payment APIs use it.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Page of a listing when none is asked for: a screenful for people, one request for most
/// scripts.
pub(crate) const DEFAULT_PAGE: u32 = 100;
/// Largest page: keeps one listing's response in the low megabytes and its query short.
pub(crate) const MAX_PAGE: u32 = 1000;

fn created_or_found(inserted: bool) -> StatusCode {
    if inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Enqueues one job. 201 when new; 200 with the earlier job when its idempotency key
/// (body field or `Idempotency-Key` header) was seen within the window.
#[utoipa::path(post, path = "/v1/jobs", operation_id = "enqueue_job", tag = "jobs",
    request_body = EnqueueRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Deduplicates the enqueue")),
    responses(
        (status = 201, description = "Stored durably", body = Job),
        (status = 200, description = "An earlier job with the same idempotency key", body = Job),
        (status = 400, description = "Bad input; nothing stored", body = ErrorBody),
        (status = 404, description = "A job named in `after` does not exist; nothing stored", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable; nothing acknowledged", body = ErrorBody)))]
pub(crate) async fn enqueue(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    ApiJson(mut req): ApiJson<EnqueueRequest>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let mut keys = headers.get_all(IDEMPOTENCY_HEADER).iter();
    if let Some(h) = keys.next() {
        if keys.next().is_some() {
            return Err(ApiError::invalid(
                "Idempotency-Key header: given more than once; send one key",
            ));
        }
        let key = h
            .to_str()
            .map_err(|_| ApiError::invalid("Idempotency-Key header: must be visible ASCII"))?
            .to_string();
        match &req.idempotency_key {
            Some(body_key) if *body_key != key => {
                return Err(ApiError::invalid(
                    "idempotency_key: the body and the Idempotency-Key header disagree",
                ));
            }
            _ => req.idempotency_key = Some(key),
        }
    }
    let job = req.into_new_job(&state.enqueue_limits())?;
    caller.check_new_job(&job)?;
    crate::auth::check_parents(&caller, &state.engine, std::slice::from_ref(&job)).await?;
    let (status, Json(job)) = enqueue_one(&state, job).await?;
    // An idempotency key is unique across queues: a repeat that found another queue's job
    // must not hand it to a token limited to other queues.
    if !caller.allows_queue(job.queue.as_str()) {
        return Err(foreign_repeat());
    }
    Ok((status, Json(job)))
}

/// Stores one job: 201 with it when new, 200 with the earlier job for an idempotent repeat.
pub(crate) async fn enqueue_one(
    state: &AppState,
    job: errand_core::NewJob,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    if job.notify.callback_url.is_some() {
        super::subscriptions::require_signing(state, "callback_url")?;
    }
    let mut out = state.engine.enqueue_many(vec![job]).await?;
    let first = out.pop().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "store answered nothing",
        )
    })?;
    Ok((created_or_found(first.inserted), Json(first.job)))
}

/// Enqueues many jobs atomically: all are stored or none.
#[utoipa::path(post, path = "/v1/jobs/batch", operation_id = "enqueue_jobs", tag = "jobs",
    request_body = BatchEnqueueRequest,
    responses(
        (status = 201, description = "Stored durably", body = BatchEnqueueResponse),
        (status = 200, description = "Every job was an idempotent repeat", body = BatchEnqueueResponse),
        (status = 400, description = "Bad input (the first bad job is named); nothing stored", body = ErrorBody),
        (status = 404, description = "A job named in `after` does not exist; nothing stored", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Store unavailable; retry with the same idempotency keys", body = ErrorBody)))]
pub(crate) async fn enqueue_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(req): ApiJson<BatchEnqueueRequest>,
) -> Result<(StatusCode, Json<BatchEnqueueResponse>), ApiError> {
    let jobs = req.into_new_jobs(&state.enqueue_limits())?;
    for job in &jobs {
        caller.check_new_job(job)?;
    }
    crate::auth::check_parents(&caller, &state.engine, &jobs).await?;
    if jobs.iter().any(|j| j.notify.callback_url.is_some()) {
        super::subscriptions::require_signing(&state, "callback_url")?;
    }
    let out = state.engine.enqueue_many(jobs).await?;
    if out
        .iter()
        .any(|r| !caller.allows_queue(r.job.queue.as_str()))
    {
        return Err(foreign_repeat());
    }
    let inserted = out.iter().filter(|r| r.inserted).count();
    let jobs = out
        .into_iter()
        .map(|r| EnqueuedJob {
            id: r.job.id,
            state: r.job.state,
            inserted: r.inserted,
        })
        .collect();
    Ok((
        created_or_found(inserted > 0),
        Json(BatchEnqueueResponse { jobs, inserted }),
    ))
}

/// Lists jobs, newest first, with filters and a cursor.
#[utoipa::path(get, path = "/v1/jobs", operation_id = "list_jobs", tag = "jobs",
    params(JobListQuery),
    responses((status = 200, description = "A page", body = JobPage), (status = 400, description = "Bad filter", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<JobListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let params = list_params(q)?;
    Ok(Json(page(&state, params).await?))
}

/// Turns listing query parameters into store parameters.
pub(crate) fn list_params(q: JobListQuery) -> Result<JobListParams, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok(JobListParams {
        queue: q.queue.as_deref().map(QueueName::parse).transpose()?,
        state: q.state.as_deref().map(str::parse::<JobState>).transpose()?,
        kind: q.kind.as_deref().map(JobKind::parse).transpose()?,
        tag: q.tag,
        before: q.cursor.as_deref().map(job_id).transpose()?,
        limit,
    })
}

/// Reads a page and its cursor.
pub(crate) async fn page(state: &AppState, params: JobListParams) -> Result<JobPage, ApiError> {
    let limit = params.limit as usize;
    let jobs = state.engine.list(params).await?;
    let next_cursor = (jobs.len() == limit)
        .then(|| jobs.last().map(|j| j.id))
        .flatten();
    Ok(JobPage { jobs, next_cursor })
}

/// One job; `?wait=30s` long-polls until it ends.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "get_job", tag = "jobs",
    params(("id" = errand_core::JobId, Path, description = "Job id"), JobWaitQuery),
    responses((status = 200, description = "The job", body = Job), (status = 404, description = "No such job", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<JobWaitQuery>,
) -> Result<Json<Job>, ApiError> {
    let id = job_id(&id)?;
    let wait = match q.wait.as_deref() {
        None => Duration::ZERO,
        Some(w) => duration::parse("wait", w)?,
    };
    if wait > Duration::from_millis(MAX_WAIT_MS) {
        return Err(ApiError::invalid(format!(
            "wait: at most {} ms",
            MAX_WAIT_MS
        )));
    }
    let _waiting = if wait.is_zero() {
        None
    } else {
        Some(state.wait_place()?)
    };
    let job = state.engine.job(id, wait).await?;
    hide_other_queues(&caller, &job)?;
    Ok(Json(job))
}

/// The answer when an idempotency key names a job in a queue the caller's token does not
/// cover: the job is not shown.
fn foreign_repeat() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        "idempotency_key: a job outside this token's queues already has this key; use another key",
    )
}

/// A job in a queue the caller's token does not cover answers as if it did not exist.
fn hide_other_queues(caller: &Principal, job: &Job) -> Result<(), ApiError> {
    if caller.allows_queue(job.queue.as_str()) {
        Ok(())
    } else {
        Err(errand_store::StoreError::NotFound {
            what: format!("job {}", job.id),
        }
        .into())
    }
}

/// Cancels a job that has not finished; a running job's worker loses its lease.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", operation_id = "cancel_job", tag = "jobs",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    responses((status = 200, description = "Cancelled", body = Job), (status = 404, body = ErrorBody), (status = 409, description = "Already finished", body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Job>, ApiError> {
    let id = job_id(&id)?;
    if !caller.queues.is_empty() {
        hide_other_queues(&caller, &state.engine.job(id, Duration::ZERO).await?)?;
    }
    Ok(Json(state.engine.cancel(id).await?))
}

/// Runs a dead, cancelled or retry-waiting job again now (one more attempt if it had none).
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", operation_id = "retry_job", tag = "jobs",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    responses((status = 200, description = "Available again", body = Job), (status = 404, body = ErrorBody), (status = 409, description = "Running, ready or succeeded", body = ErrorBody)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.engine.retry(job_id(&id)?).await?))
}

/// A job's attempts.
#[utoipa::path(get, path = "/v1/jobs/{id}/attempts", operation_id = "list_job_attempts", tag = "jobs",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    responses((status = 200, description = "Attempts, first first", body = AttemptList), (status = 404, body = ErrorBody)))]
pub(crate) async fn attempts(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AttemptList>, ApiError> {
    Ok(Json(AttemptList {
        attempts: state.engine.attempts(job_id(&id)?).await?,
    }))
}

/// Why the job has not started, now: every reason that holds (queue paused, `run_at` in
/// the future, lock key held, session head, a concurrency limit reached, rate-limited,
/// no worker), most decisive first, in words and as codes.
#[utoipa::path(get, path = "/v1/jobs/{id}/explain", operation_id = "explain_job", tag = "jobs",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    responses((status = 200, description = "The reasons", body = errand_core::explain::Explanation), (status = 404, body = ErrorBody)))]
pub(crate) async fn explain(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<errand_core::explain::Explanation>, ApiError> {
    Ok(Json(state.engine.explain(job_id(&id)?).await?))
}
