//! `POST /v1/hooks/{name}`: a webhook enqueues its definition's job with the request body
//! as payload. A hook with a secret takes only signed requests (Standard Webhooks headers,
//! or GitHub's `X-Hub-Signature-256`); a bad or missing signature enqueues nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use errand_api::ErrorBody;
use errand_core::Job;
use errand_runner::triggers::hook_signature;

use crate::extract::ApiPath;
use crate::{ApiError, AppState};

/// Headers whose value names one delivery, so a sender's retry of it enqueues nothing new.
const DELIVERY_HEADERS: [&str; 2] = ["webhook-id", "x-github-delivery"];

/// Receives a webhook and enqueues its definition's job.
#[utoipa::path(post, path = "/v1/hooks/{name}", operation_id = "receive_hook", tag = "definitions",
    params(("name" = errand_core::QueueName, Path, description = "Hook name (`[[triggers.hook]]` in job.toml)")),
    request_body(content = String, description = "Any body; JSON is passed on as it is, anything else as a JSON string", content_type = "*/*"),
    responses((status = 202, description = "Enqueued; the body is the job", body = Job),
        (status = 401, description = "Missing or bad signature; nothing enqueued", body = ErrorBody),
        (status = 404, description = "No such hook", body = ErrorBody),
        (status = 503, description = "The hook's secret is not set in the server's environment, or the store is unavailable", body = ErrorBody)))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let snapshot = state.scripts.snapshot();
    let Some((def, hook)) = snapshot.by_hook(&name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no hook `{name}` in this node's job definitions"),
        ));
    };
    let mut delivery = None;
    if let Some(var) = &hook.secret_env {
        let secret = std::env::var(var).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("hook `{name}` is signed with the secret in ${var}, which is not set in errand's environment"),
            )
        })?;
        let verified = hook_signature::verify(&secret, &headers, &body, jiff::Timestamp::now())
            .map_err(|e| match e {
                // The operator's secret is unusable: not the sender's fault.
                hook_signature::SignatureError::BadSecret(_) => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("hook `{name}`: the secret in ${var} is unusable ({e}); nothing was enqueued"),
                ),
                _ => ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    format!("hook `{name}`: {e}; nothing was enqueued"),
                ),
            })?;
        delivery = verified.webhook_id;
    }
    if delivery.is_none() {
        delivery = DELIVERY_HEADERS
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .map(str::to_owned);
    }
    let payload = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => v,
        Err(_) if body.is_empty() => serde_json::json!({}),
        Err(_) => serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    let key = delivery.map(|d| format!("hook:{name}:{d}"));
    let (_, job) = super::definitions::enqueue_for(&state, def, Some(payload), key).await?;
    Ok((StatusCode::ACCEPTED, job))
}
