//! `/v1/limits`: concurrency and rate limits of kinds and rate keys, across nodes.
//!
//! Each scope has its own paths (`/v1/limits/kind/{name}`, `/v1/limits/key/{name}`)
//! because the two take different bodies: a kind a concurrency and/or a rate, a rate key
//! only a rate. Any other scope is answered by [`other_scope`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use errand_api::{check_limit_name, ErrorBody, LimitList, LimitRequest, RateKeyLimitRequest};
use errand_core::throttle::{Limit, LimitInfo, LimitScope};
use errand_core::JobKind;
use serde_json::{json, Value};

use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// Every kind and rate-key limit with the jobs running under it and its tokens.
#[utoipa::path(get, path = "/v1/limits", operation_id = "list_limits", tag = "limits",
    responses((status = 200, description = "By scope, then name", body = LimitList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<LimitList>, ApiError> {
    Ok(Json(LimitList {
        limits: state.engine.limit_list().await?,
    }))
}

/// One kind's limit.
#[utoipa::path(get, path = "/v1/limits/kind/{name}", operation_id = "get_kind_limit", tag = "limits",
    params(("name" = JobKind, Path, description = "The kind")),
    responses((status = 200, description = "The limit", body = LimitInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_kind(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<LimitInfo>, ApiError> {
    get_limit(&state, LimitScope::Kind, &name).await
}

/// One rate key's limit.
#[utoipa::path(get, path = "/v1/limits/key/{name}", operation_id = "get_key_limit", tag = "limits",
    params(("name" = errand_api::schema::OrderingKey, Path, description = "The rate key")),
    responses((status = 200, description = "The limit", body = LimitInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_key(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<LimitInfo>, ApiError> {
    get_limit(&state, LimitScope::Key, &name).await
}

/// Sets a kind's limit (a concurrency and/or a rate; concurrency 1 makes the kind a
/// singleton), replacing any before. A bad value changes nothing.
#[utoipa::path(put, path = "/v1/limits/kind/{name}", operation_id = "put_kind_limit", tag = "limits",
    params(("name" = JobKind, Path, description = "The kind")),
    request_body = LimitRequest,
    responses((status = 200, description = "The limit", body = LimitInfo), (status = 400, description = "A bad kind, a limit of 0, a bad rate, or nothing to limit; nothing changed", body = ErrorBody)))]
pub(crate) async fn put_kind(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<LimitRequest>,
) -> Result<Json<LimitInfo>, ApiError> {
    let limit = req.into_limit(LimitScope::Kind.as_str(), &name)?;
    put_limit(&state, limit).await
}

/// Sets a rate key's limit (a rate only: a concurrency per key travels on its jobs as
/// `concurrency_key` and `concurrency_limit`), replacing any before. A bad value changes
/// nothing.
#[utoipa::path(put, path = "/v1/limits/key/{name}", operation_id = "put_key_limit", tag = "limits",
    params(("name" = errand_api::schema::OrderingKey, Path, description = "The rate key")),
    request_body = RateKeyLimitRequest,
    responses((status = 200, description = "The limit", body = LimitInfo), (status = 400, description = "A bad key or rate, or a field other than `rate`; nothing changed", body = ErrorBody)))]
pub(crate) async fn put_key(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<RateKeyLimitRequest>,
) -> Result<Json<LimitInfo>, ApiError> {
    let limit = req.into_limit(&name)?;
    put_limit(&state, limit).await
}

/// Removes a kind's limit; the jobs it held back may start.
#[utoipa::path(delete, path = "/v1/limits/kind/{name}", operation_id = "delete_kind_limit", tag = "limits",
    params(("name" = JobKind, Path, description = "The kind")),
    responses((status = 200, description = "Deleted"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_kind(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    delete_limit(&state, LimitScope::Kind, &name).await
}

/// Removes a rate key's limit; the jobs it held back may start.
#[utoipa::path(delete, path = "/v1/limits/key/{name}", operation_id = "delete_key_limit", tag = "limits",
    params(("name" = errand_api::schema::OrderingKey, Path, description = "The rate key")),
    responses((status = 200, description = "Deleted"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_key(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    delete_limit(&state, LimitScope::Key, &name).await
}

/// Any method on `/v1/limits/{scope}/{name}` with a scope other than `kind` or `key`: a
/// 400 that says what the scopes are (queue limits are queue settings).
pub(crate) async fn other_scope(ApiPath((scope, name)): ApiPath<(String, String)>) -> ApiError {
    match check_limit_name(&scope, &name) {
        Err(invalid) => invalid.into(),
        // Unreachable in practice: `kind` and `key` have their own routes.
        Ok(_) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {scope} limit route for {name}"),
        ),
    }
}

async fn get_limit(
    state: &AppState,
    scope: LimitScope,
    name: &str,
) -> Result<Json<LimitInfo>, ApiError> {
    check_limit_name(scope.as_str(), name)?;
    Ok(Json(state.engine.limit_get(scope, name).await?))
}

async fn put_limit(state: &AppState, limit: Limit) -> Result<Json<LimitInfo>, ApiError> {
    Ok(Json(state.engine.limit_put(limit).await?))
}

async fn delete_limit(
    state: &AppState,
    scope: LimitScope,
    name: &str,
) -> Result<Json<Value>, ApiError> {
    check_limit_name(scope.as_str(), name)?;
    state.engine.limit_delete(scope, name).await?;
    Ok(Json(
        json!({ "deleted": { "scope": scope.as_str(), "name": name } }),
    ))
}
