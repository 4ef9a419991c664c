//! `/v1/sessions`: ordered sessions, their state (compare-and-set on a version), and
//! unblocking one stuck behind a dead job.

use axum::extract::State;
use axum::Json;
use errand_api::{check_name, ErrorBody, SessionList, SessionListQuery, SessionStateRequest};
use errand_core::session::Session;
use errand_store::{SessionListParams, SessionStatePutParams};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// Default page size of `GET /v1/sessions`.
const DEFAULT_PAGE: u32 = 100;
/// Largest page size.
const MAX_PAGE: u32 = 1000;

/// Sessions by key: head job, length, state version, and whether blocked.
#[utoipa::path(get, path = "/v1/sessions", operation_id = "list_sessions", tag = "sessions",
    params(SessionListQuery),
    responses((status = 200, description = "A page of sessions by key", body = SessionList), (status = 400, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SessionListQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    let sessions = state
        .engine
        .session_list(SessionListParams {
            after: q.after,
            blocked: q.blocked,
            limit,
        })
        .await?;
    let next_after = (sessions.len() == limit as usize)
        .then(|| sessions.last().map(|s| s.key.clone()))
        .flatten();
    Ok(Json(SessionList {
        sessions,
        next_after,
    }))
}

/// One session: its state and version, head job, length, and the dead job it is blocked
/// behind, if any.
#[utoipa::path(get, path = "/v1/sessions/{key}", operation_id = "get_session", tag = "sessions",
    params(("key" = errand_api::schema::OrderingKey, Path, description = "Session key")),
    responses((status = 200, description = "The session", body = Session), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Session>, ApiError> {
    check_name("key", &key)?;
    Ok(Json(state.engine.session_get(&key).await?))
}

/// Sets a session's state if it is still at `version` (0 creates it); the answer carries
/// the new version.
#[utoipa::path(put, path = "/v1/sessions/{key}/state", operation_id = "put_session_state", tag = "sessions",
    params(("key" = errand_api::schema::OrderingKey, Path, description = "Session key")),
    request_body = SessionStateRequest,
    responses((status = 200, description = "Written", body = Session), (status = 400, description = "Not JSON, too big, or a bad key; nothing changed", body = ErrorBody), (status = 409, description = "`version_conflict`: the session is at another version; nothing changed", body = ErrorBody)))]
pub(crate) async fn put_state(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(req): ApiJson<SessionStateRequest>,
) -> Result<Json<Session>, ApiError> {
    check_name("key", &key)?;
    req.validate()?;
    Ok(Json(
        state
            .engine
            .session_state_put(SessionStatePutParams {
                key,
                state: req.state,
                expected_version: req.version,
            })
            .await?,
    ))
}

/// Moves a session blocked behind a dead job on to its next job (the dead job stays dead).
#[utoipa::path(post, path = "/v1/sessions/{key}/unblock", operation_id = "unblock_session", tag = "sessions",
    params(("key" = errand_api::schema::OrderingKey, Path, description = "Session key")),
    responses((status = 200, description = "Unblocked", body = Session), (status = 404, body = ErrorBody), (status = 409, description = "Not blocked", body = ErrorBody)))]
pub(crate) async fn unblock(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Session>, ApiError> {
    check_name("key", &key)?;
    Ok(Json(state.engine.session_unblock(&key).await?))
}
