//! `/v1/subscriptions`: URLs that receive matching job and schedule events, and the
//! deliveries made to them; `GET /v1/jobs/{id}/deliveries`: a job's callback and the
//! subscription deliveries about it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use errand_api::{
    DeliveryList, DeliveryListQuery, ErrorBody, PauseSubscriptionRequest, SubscriptionList,
    SubscriptionPatchRequest, SubscriptionRequest,
};
use errand_core::{DeliveryId, Subscription, SubscriptionId, SubscriptionPatch, SubscriptionState};
use errand_store::DeliveryListParams;
use serde_json::{json, Value};

use crate::extract::{job_id, ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::{ApiError, AppState};

fn id(raw: &str) -> Result<SubscriptionId, ApiError> {
    raw.parse::<SubscriptionId>().map_err(ApiError::from)
}

/// Refuses what would be sent unsigned: without a configured secret nothing can sign.
pub(crate) fn require_signing(state: &AppState, what: &str) -> Result<(), ApiError> {
    if state.webhooks_enabled {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{what}: no webhook secret is configured on the server, so nothing could be signed; start it with --webhook-secret whsec_... (or webhook_secrets in errand.toml)"
        )))
    }
}

/// Creates a subscription; it receives matching events from now on.
#[utoipa::path(post, path = "/v1/subscriptions", operation_id = "create_subscription", tag = "subscriptions",
    request_body = SubscriptionRequest,
    responses((status = 201, description = "Created", body = Subscription), (status = 400, description = "Bad URL, event type or filter, or no webhook secret configured; nothing stored", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SubscriptionRequest>,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    let new = req.into_new()?;
    require_signing(&state, "subscriptions")?;
    Ok((
        StatusCode::CREATED,
        Json(state.engine.subscription_create(new).await?),
    ))
}

/// Every subscription, oldest first.
#[utoipa::path(get, path = "/v1/subscriptions", operation_id = "list_subscriptions", tag = "subscriptions",
    responses((status = 200, description = "Oldest first", body = SubscriptionList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<SubscriptionList>, ApiError> {
    Ok(Json(SubscriptionList {
        subscriptions: state.engine.subscription_list().await?,
    }))
}

/// One subscription, with its state and why it is paused.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", operation_id = "get_subscription", tag = "subscriptions",
    params(("id" = errand_core::SubscriptionId, Path, description = "Subscription id")),
    responses((status = 200, description = "The subscription", body = Subscription), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Subscription>, ApiError> {
    Ok(Json(state.engine.subscription_get(id(&raw)?).await?))
}

/// Changes a subscription's URL, events or filters; absent fields stay, `null` removes a
/// filter.
#[utoipa::path(patch, path = "/v1/subscriptions/{id}", operation_id = "update_subscription", tag = "subscriptions",
    params(("id" = errand_core::SubscriptionId, Path, description = "Subscription id")),
    request_body = SubscriptionPatchRequest,
    responses((status = 200, description = "Changed", body = Subscription), (status = 404, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<SubscriptionPatchRequest>,
) -> Result<Json<Subscription>, ApiError> {
    let sid = id(&raw)?;
    let patch = req.into_patch()?;
    Ok(Json(state.engine.subscription_update(sid, patch).await?))
}

/// Deletes a subscription and its pending deliveries (finished ones stay until pruned).
#[utoipa::path(delete, path = "/v1/subscriptions/{id}", operation_id = "delete_subscription", tag = "subscriptions",
    params(("id" = errand_core::SubscriptionId, Path, description = "Subscription id")),
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let sid = id(&raw)?;
    state.engine.subscription_delete(sid).await?;
    Ok(Json(json!({ "deleted": sid })))
}

/// Stops deliveries: matching events are not recorded for it, and its pending deliveries
/// wait, until it is resumed.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/pause", operation_id = "pause_subscription", tag = "subscriptions",
    params(("id" = errand_core::SubscriptionId, Path, description = "Subscription id")),
    request_body(content = Option<PauseSubscriptionRequest>, description = "An optional reason"),
    responses((status = 200, description = "Paused", body = Subscription), (status = 404, body = ErrorBody)))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    OptionalJson(req): OptionalJson<PauseSubscriptionRequest>,
) -> Result<Json<Subscription>, ApiError> {
    let sid = id(&raw)?;
    let reason = req.into_reason()?;
    Ok(Json(
        state
            .engine
            .subscription_update(
                sid,
                SubscriptionPatch {
                    state: Some((SubscriptionState::Paused, Some(reason))),
                    ..SubscriptionPatch::default()
                },
            )
            .await?,
    ))
}

/// Delivers again: clears the pause reason and the failure count; pending deliveries are
/// sent.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/resume", operation_id = "resume_subscription", tag = "subscriptions",
    params(("id" = errand_core::SubscriptionId, Path, description = "Subscription id")),
    responses((status = 200, description = "Active", body = Subscription), (status = 404, body = ErrorBody)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Subscription>, ApiError> {
    let sid = id(&raw)?;
    Ok(Json(
        state
            .engine
            .subscription_update(
                sid,
                SubscriptionPatch {
                    state: Some((SubscriptionState::Active, None)),
                    ..SubscriptionPatch::default()
                },
            )
            .await?,
    ))
}

fn page(q: DeliveryListQuery) -> Result<DeliveryListParams, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit: must be between 1 and 1000"));
    }
    let before = q
        .before
        .as_deref()
        .map(|b| {
            b.parse::<DeliveryId>()
                .map_err(|_| ApiError::invalid(format!("before: `{b}` is not a delivery id")))
        })
        .transpose()?;
    Ok(DeliveryListParams {
        before,
        limit,
        ..DeliveryListParams::default()
    })
}

async fn deliveries(
    state: &AppState,
    params: DeliveryListParams,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = params.limit as usize;
    let deliveries = state.engine.delivery_list(params).await?;
    let next_cursor = (deliveries.len() >= limit)
        .then(|| deliveries.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryList {
        deliveries,
        next_cursor,
    }))
}

/// The deliveries made to a subscription, newest first, each with its attempts.
#[utoipa::path(get, path = "/v1/subscriptions/{id}/deliveries", operation_id = "list_subscription_deliveries", tag = "subscriptions",
    params(("id" = errand_core::SubscriptionId, Path, description = "Subscription id"), DeliveryListQuery),
    responses((status = 200, description = "Newest first", body = DeliveryList), (status = 404, body = ErrorBody)))]
pub(crate) async fn subscription_deliveries(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryListQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let sid = id(&raw)?;
    let params = page(q)?;
    // 404 for a subscription that does not exist (an empty list would hide a typo).
    state.engine.subscription_get(sid).await?;
    deliveries(
        &state,
        DeliveryListParams {
            subscription: Some(sid),
            ..params
        },
    )
    .await
}

/// The deliveries about a job (its callback, and subscription deliveries of its events),
/// newest first, each with its attempts.
#[utoipa::path(get, path = "/v1/jobs/{id}/deliveries", operation_id = "list_job_deliveries", tag = "jobs",
    params(("id" = errand_core::JobId, Path, description = "Job id"), DeliveryListQuery),
    responses((status = 200, description = "Newest first", body = DeliveryList), (status = 400, body = ErrorBody)))]
pub(crate) async fn job_deliveries(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryListQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let job = job_id(&raw)?;
    let params = page(q)?;
    deliveries(
        &state,
        DeliveryListParams {
            job: Some(job),
            ..params
        },
    )
    .await
}
