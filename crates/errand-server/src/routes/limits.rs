//! `/v1/limits`: concurrency and rate limits of kinds and rate keys, across nodes.

use axum::extract::State;
use axum::Json;
use errand_api::{check_limit_name, ErrorBody, LimitList, LimitRequest};
use errand_core::throttle::{LimitInfo, LimitScope};
use serde_json::{json, Value};

use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

fn scope_and_name(scope: &str, name: &str) -> Result<LimitScope, ApiError> {
    Ok(check_limit_name(scope, name)?)
}

/// Every kind and rate-key limit with the jobs running under it and its tokens.
#[utoipa::path(get, path = "/v1/limits", operation_id = "list_limits", tag = "limits",
    responses((status = 200, description = "By scope, then name", body = LimitList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<LimitList>, ApiError> {
    Ok(Json(LimitList {
        limits: state.engine.limit_list().await?,
    }))
}

/// One limit.
#[utoipa::path(get, path = "/v1/limits/{scope}/{name}", operation_id = "get_limit", tag = "limits",
    params(("scope" = LimitScope, Path, description = "`kind` or `key` (a rate key)"), ("name" = errand_api::schema::OrderingKey, Path, description = "The kind or rate key")),
    responses((status = 200, description = "The limit", body = LimitInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath((scope, name)): ApiPath<(String, String)>,
) -> Result<Json<LimitInfo>, ApiError> {
    let scope = scope_and_name(&scope, &name)?;
    Ok(Json(state.engine.limit_get(scope, &name).await?))
}

/// Sets the limit of a kind (concurrency and/or rate; concurrency 1 makes it a singleton)
/// or of a rate key (rate only), replacing any before. A bad value changes nothing.
#[utoipa::path(put, path = "/v1/limits/{scope}/{name}", operation_id = "put_limit", tag = "limits",
    params(("scope" = LimitScope, Path, description = "`kind` or `key` (a rate key)"), ("name" = errand_api::schema::OrderingKey, Path, description = "The kind or rate key")),
    request_body = LimitRequest,
    responses((status = 200, description = "The limit", body = LimitInfo), (status = 400, description = "A limit of 0, a bad rate, a concurrency on a rate key, or nothing to limit; nothing changed", body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    ApiPath((scope, name)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<LimitRequest>,
) -> Result<Json<LimitInfo>, ApiError> {
    let limit = req.into_limit(&scope, &name)?;
    Ok(Json(state.engine.limit_put(limit).await?))
}

/// Removes a limit; the jobs it held back may start.
#[utoipa::path(delete, path = "/v1/limits/{scope}/{name}", operation_id = "delete_limit", tag = "limits",
    params(("scope" = LimitScope, Path, description = "`kind` or `key` (a rate key)"), ("name" = errand_api::schema::OrderingKey, Path, description = "The kind or rate key")),
    responses((status = 200, description = "Deleted"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath((scope, name)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let parsed = scope_and_name(&scope, &name)?;
    state.engine.limit_delete(parsed, &name).await?;
    Ok(Json(json!({ "deleted": { "scope": scope, "name": name } })))
}
