//! The remote worker protocol.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use errand_api::schema::MAX_WORKER_LEN;
use errand_api::{
    ClaimRequest, ClaimResponse, ClaimedJobView, CompleteRequest, ErrorBody, FailRequest,
    HeartbeatRequest, HeartbeatResponse, ReleaseRequest, SettleCompletion, SettleFailure,
    SettleRequest, SettleResponse, SettleResult,
};
use errand_core::limits::{DEFAULT_LEASE_MS, MAX_CLAIM, MAX_LEASE_MS, MAX_WAIT_MS, MIN_LEASE_MS};
use errand_core::{Job, JobId, JobKind, QueueName, RunReport};
use errand_store::{JobHeartbeatParams, Settlement, StoreError};

use crate::extract::{job_id, ApiJson, ApiPath, OptionalJson};
use crate::{ApiError, AppState};

fn lease(field: &str, ms: u64) -> Result<Duration, ApiError> {
    if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&ms) {
        return Err(ApiError::invalid(format!(
            "{field}: must be between {MIN_LEASE_MS} and {MAX_LEASE_MS}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// Leases up to `max` ready jobs of the queue, long-polling up to `wait_ms` for work. May
/// first settle the jobs the worker finished (`completions`, `failures`) in the claim's
/// transaction: one round trip per worker cycle.
#[utoipa::path(post, path = "/v1/queues/{queue}/claim", operation_id = "claim_jobs", tag = "workers",
    params(("queue" = errand_core::QueueName, Path, description = "Queue name")),
    request_body = Option<ClaimRequest>,
    responses((status = 200, description = "Claimed jobs (maybe none), and how each settlement sent with the claim went", body = ClaimResponse), (status = 400, body = ErrorBody), (status = 409, description = "constraint_violated: nothing of the settlements or the claim was kept", body = ErrorBody), (status = 503, description = "Store unavailable; nothing of the settlements is known to be kept: send them again", body = ErrorBody)))]
pub(crate) async fn claim(
    State(state): State<AppState>,
    ApiPath(queue): ApiPath<String>,
    OptionalJson(req): OptionalJson<ClaimRequest>,
) -> Result<Json<ClaimResponse>, ApiError> {
    let queue = QueueName::parse(&queue)?;
    let max = req.max.unwrap_or(1);
    if !(1..=MAX_CLAIM).contains(&max) {
        return Err(ApiError::invalid(format!(
            "max: must be between 1 and {MAX_CLAIM}"
        )));
    }
    let wait_ms = req.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid(format!("wait_ms: at most {MAX_WAIT_MS}")));
    }
    let worker = req.worker.unwrap_or_else(|| "anonymous".into());
    errand_core::names::check_label("worker", &worker, MAX_WORKER_LEN)?;
    let kinds = req
        .kinds
        .iter()
        .map(|k| JobKind::parse(k))
        .collect::<Result<Vec<_>, _>>()?;
    let _waiting = if wait_ms > 0 {
        Some(state.wait_place()?)
    } else {
        None
    };
    let (ids, settlements) = settlements(req.completions, req.failures)?;
    let (settled, claimed) = state
        .engine
        .settle_and_claim(
            settlements,
            errand_engine::ClaimRequest {
                queue,
                worker,
                max,
                lease: lease("lease_ms", req.lease_ms.unwrap_or(DEFAULT_LEASE_MS))?,
                kinds,
                wait: Duration::from_millis(wait_ms),
            },
        )
        .await?;
    Ok(Json(ClaimResponse {
        jobs: claimed
            .into_iter()
            .map(|c| ClaimedJobView::new(c.job, c.lease_token).with_session(c.session))
            .collect(),
        settled: settle_results(ids, settled),
    }))
}

/// Extends the lease; may carry progress and a checkpoint. 409 `lease_lost` when the token
/// no longer holds the job: stop working on it.
#[utoipa::path(post, path = "/v1/jobs/{id}/heartbeat", operation_id = "heartbeat_job", tag = "workers",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    request_body = HeartbeatRequest,
    responses((status = 200, description = "Lease renewed", body = HeartbeatResponse), (status = 400, description = "Bad lease, progress or checkpoint", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Lease lost", body = ErrorBody), (status = 503, description = "Store unavailable; retry", body = ErrorBody)))]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    if let Some(p) = req.progress.as_ref().and_then(|p| p.percent) {
        if !(0.0..=100.0).contains(&p) {
            return Err(ApiError::invalid(
                "progress.percent: must be between 0 and 100",
            ));
        }
    }
    if let Some(message) = req.progress.as_ref().and_then(|p| p.message.as_deref()) {
        errand_api::reject_nul_text("progress.message", message)?;
    }
    if let Some(checkpoint) = &req.checkpoint {
        errand_api::reject_nul("checkpoint", checkpoint)?;
    }
    let job = state
        .engine
        .heartbeat(JobHeartbeatParams {
            id: job_id(&id)?,
            lease_token: req.lease_token,
            lease: req.lease_ms.map(|ms| lease("lease_ms", ms)).transpose()?,
            progress: req.progress,
            checkpoint: req.checkpoint,
        })
        .await?;
    Ok(Json(HeartbeatResponse {
        lease_expires_at: job.lease_expires_at,
        state: job.state,
    }))
}

/// Gives a leased job back to its queue as if it had never been claimed: the attempt is
/// not counted and the job is `available` again at once. For a worker that stops before a
/// job ends (a SIGTERM past its grace period); a failure would count the attempt and, on
/// the last one, make the job dead.
#[utoipa::path(post, path = "/v1/jobs/{id}/release", operation_id = "release_job", tag = "workers",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    request_body = ReleaseRequest,
    responses((status = 200, description = "Given back: the job as it is now (`available`)", body = Job), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Lease lost (the job ended, was cancelled, or its lease expired and it was taken back); nothing changed", body = ErrorBody), (status = 503, description = "Store unavailable; retry", body = ErrorBody)))]
pub(crate) async fn release(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> Result<Json<Job>, ApiError> {
    let id = job_id(&id)?;
    let released = state.engine.release(vec![(id, req.lease_token)]).await?;
    match released.into_iter().next() {
        Some(job) => Ok(Json(job)),
        // Not released: tell a job that is gone from one another worker holds or that ended.
        None => {
            state.engine.job(id, Duration::ZERO).await?;
            Err(ApiError::from(errand_store::StoreError::LeaseLost {
                job: id.to_string(),
            }))
        }
    }
}

/// Completes the job with a result.
#[utoipa::path(post, path = "/v1/jobs/{id}/complete", operation_id = "complete_job", tag = "workers",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    request_body = CompleteRequest,
    responses((status = 200, description = "Succeeded (or the same completion repeated by its token)", body = Job), (status = 400, body = ErrorBody), (status = 413, description = "`result_too_large`: the result is longer than `max_result_bytes` (both sizes named); the job failed for good (dead) with that reason", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Lease lost; nothing changed", body = ErrorBody), (status = 503, description = "Store unavailable; retry", body = ErrorBody)))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Json<Job>, ApiError> {
    let settlement = completion(
        job_id(&id)?,
        req.lease_token,
        req.result,
        req.report,
        req.session_state,
    );
    storable("", &settlement)?;
    let job = state.engine.settle(settlement).await?;
    Ok(Json(job))
}

fn completion(
    id: errand_core::JobId,
    lease_token: errand_core::LeaseToken,
    result: Option<serde_json::Value>,
    report: Option<RunReport>,
    session_state: Option<serde_json::Value>,
) -> Settlement {
    Settlement::Complete {
        id,
        lease_token,
        result,
        report,
        session_state,
    }
}

fn failure(
    id: errand_core::JobId,
    lease_token: errand_core::LeaseToken,
    error: Option<String>,
    retry_in_ms: Option<u64>,
    dead: bool,
    report: Option<RunReport>,
) -> Settlement {
    Settlement::Fail {
        id,
        lease_token,
        error: error.unwrap_or_else(|| "failed".into()),
        retry_in: retry_in_ms.map(Duration::from_millis),
        dead,
        report,
    }
}

/// Refuses what no store can keep in a settlement (NUL characters, a retry past the year
/// 9999, a run report's figure beyond a signed 64-bit integer), naming the field after
/// `prefix` (`completions[2].`, or nothing for a single settle).
fn storable(prefix: &str, s: &Settlement) -> Result<(), ApiError> {
    let report = match s {
        Settlement::Complete { report, .. } | Settlement::Fail { report, .. } => report,
    };
    if let Some(r) = report {
        for (field, value) in [
            ("duration_ms", r.duration_ms),
            ("cpu_ms", r.cpu_ms),
            ("max_rss_bytes", r.max_rss_bytes),
        ] {
            if i64::try_from(value).is_err() {
                return Err(ApiError::invalid(format!(
                    "{prefix}report.{field}: at most {}",
                    i64::MAX
                )));
            }
        }
    }
    match s {
        Settlement::Complete {
            result,
            session_state,
            ..
        } => {
            if let Some(result) = result {
                errand_api::reject_nul(&format!("{prefix}result"), result)?;
            }
            if let Some(state) = session_state {
                errand_api::check_session_state(&format!("{prefix}session_state"), state)?;
            }
        }
        Settlement::Fail {
            error, retry_in, ..
        } => {
            errand_api::reject_nul_text(&format!("{prefix}error"), error)?;
            if let Some(retry_in) = retry_in {
                errand_core::time::checked_after(
                    &format!("{prefix}retry_in_ms"),
                    errand_core::time::system_now(),
                    *retry_in,
                )?;
            }
        }
    }
    Ok(())
}

/// Fails the attempt: the job retries after a backoff (or `retry_in_ms`), or is dead when no
/// attempts are left or `dead` is true.
#[utoipa::path(post, path = "/v1/jobs/{id}/fail", operation_id = "fail_job", tag = "workers",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    request_body = FailRequest,
    responses((status = 200, description = "Scheduled for retry, or dead (or the same failure repeated by its token)", body = Job), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Lease lost; nothing changed", body = ErrorBody), (status = 503, description = "Store unavailable; retry", body = ErrorBody)))]
pub(crate) async fn fail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<FailRequest>,
) -> Result<Json<Job>, ApiError> {
    let settlement = failure(
        job_id(&id)?,
        req.lease_token,
        req.error,
        req.retry_in_ms,
        req.dead,
        req.report,
    );
    storable("", &settlement)?;
    let job = state.engine.settle(settlement).await?;
    Ok(Json(job))
}

/// Most settlements in one call (a settle call, or the ones a claim carries).
const MAX_SETTLE: usize = MAX_CLAIM as usize * 10;

/// Checks a call's completions and failures and turns them into settlements, completions
/// first; also returns their job ids in that order, to answer each.
fn settlements(
    completions: Vec<SettleCompletion>,
    failures: Vec<SettleFailure>,
) -> Result<(Vec<JobId>, Vec<Settlement>), ApiError> {
    let total = completions.len() + failures.len();
    if total > MAX_SETTLE {
        return Err(ApiError::invalid(format!(
            "completions and failures: at most {MAX_SETTLE} settlements per call, {total} sent"
        )));
    }
    let count = completions.len();
    let mut settlements: Vec<Settlement> = Vec::with_capacity(total);
    settlements.extend(
        completions
            .into_iter()
            .map(|c| completion(c.id, c.lease_token, c.result, c.report, c.session_state)),
    );
    settlements.extend(failures.into_iter().map(|f| {
        failure(
            f.id,
            f.lease_token,
            f.error,
            f.retry_in_ms,
            f.dead,
            f.report,
        )
    }));
    for (i, s) in settlements.iter().enumerate() {
        let prefix = if i < count {
            format!("completions[{i}].")
        } else {
            format!("failures[{}].", i - count)
        };
        storable(&prefix, s)?;
    }
    Ok((
        settlements.iter().map(Settlement::id).collect(),
        settlements,
    ))
}

/// Each settlement's answer, in the order of `ids`.
fn settle_results(ids: Vec<JobId>, out: Vec<Result<Job, StoreError>>) -> Vec<SettleResult> {
    ids.into_iter()
        .zip(out)
        .map(|(id, r)| match r {
            Ok(job) => SettleResult {
                id,
                state: Some(job.state),
                error: None,
            },
            Err(e) => SettleResult {
                id,
                state: None,
                error: Some(ApiError::from(e).detail()),
            },
        })
        .collect()
}

/// Settles many jobs in one call; each entry is fenced on its own token and answered in
/// order (completions first, then failures).
#[utoipa::path(post, path = "/v1/jobs/settle", operation_id = "settle_jobs", tag = "workers",
    request_body = SettleRequest,
    responses((status = 200, description = "Per-entry outcomes; a completion whose result is longer than `max_result_bytes` answers `result_too_large` and its job is dead", body = SettleResponse), (status = 400, body = ErrorBody), (status = 409, description = "constraint_violated: nothing of the batch was kept", body = ErrorBody), (status = 500, description = "A bug or an unreadable record: nothing of the batch was kept", body = ErrorBody), (status = 503, description = "Nothing of the batch is known to be kept; send it again", body = ErrorBody)))]
pub(crate) async fn settle(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SettleRequest>,
) -> Result<Json<SettleResponse>, ApiError> {
    let (ids, settlements) = settlements(req.completions, req.failures)?;
    if ids.is_empty() {
        return Err(ApiError::invalid(format!(
            "settle 1 to {MAX_SETTLE} jobs per call"
        )));
    }
    let out = state.engine.settle_many(settlements).await?;
    let results = settle_results(ids, out);
    Ok(Json(SettleResponse { results }))
}
