//! Log lines shipped by remote workers for the runs they host.

use axum::extract::State;
use axum::Json;
use errand_api::{ErrorBody, LogAppendRequest, LogAppendResponse, MAX_LOG_LINES_PER_CALL};
use errand_core::NewLogLine;
use errand_store::JobLogAppendParams;

use crate::extract::{job_id, ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// Stores lines a worker read from the stdout (INFO) and stderr (ERROR) of the attempt the
/// lease token holds, in order, numbered after the attempt's earlier lines. 409 `lease_lost`
/// when the token no longer holds the job: nothing is stored.
#[utoipa::path(post, path = "/v1/jobs/{id}/logs", operation_id = "append_job_logs", tag = "workers",
    params(("id" = errand_core::JobId, Path, description = "Job id")),
    request_body = LogAppendRequest,
    responses((status = 200, description = "Stored", body = LogAppendResponse), (status = 400, description = "No lines or too many, attempt 0, or a NUL character in a line", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Lease lost; nothing stored", body = ErrorBody), (status = 503, description = "Store unavailable; retry", body = ErrorBody)))]
pub(crate) async fn append(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<LogAppendRequest>,
) -> Result<Json<LogAppendResponse>, ApiError> {
    let id = job_id(&id)?;
    if req.lines.is_empty() || req.lines.len() > MAX_LOG_LINES_PER_CALL {
        return Err(ApiError::invalid(format!(
            "lines: send 1 to {MAX_LOG_LINES_PER_CALL} lines per call"
        )));
    }
    if req.attempt == 0 {
        return Err(ApiError::invalid("attempt: attempts count from 1"));
    }
    for (i, line) in req.lines.iter().enumerate() {
        errand_api::reject_nul_text(&format!("lines[{i}].line"), &line.line)?;
    }
    let lines: Vec<NewLogLine> = req.lines.iter().map(NewLogLine::from).collect();
    let bounds = state.scripts.log_bounds();
    let last_seq = state
        .engine
        .log_append(JobLogAppendParams {
            owner: id.0,
            attempt: req.attempt,
            lease_token: Some(req.lease_token),
            lines,
            keep_head: bounds.keep_head,
            keep_tail: bounds.keep_tail,
        })
        .await?;
    Ok(Json(LogAppendResponse { last_seq }))
}
