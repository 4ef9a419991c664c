//! `/v1/tokens` (API tokens, for admins) and `/v1/audit` (the audit trail).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use errand_api::{AuditPage, AuditQuery, ErrorBody, TokenCreateRequest, TokenCreated, TokenList};
use errand_core::duration::FlexDuration;
use errand_core::{ApiToken, TokenId};
use errand_engine::TokenRequest;
use errand_store::AuditListParams;

use crate::auth::AuditTarget;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// The longest expiry kept: later ones are as good as none.
const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// Issues a token. The answer holds the token's text, which errand never shows again.
#[utoipa::path(post, path = "/v1/tokens", operation_id = "create_token", tag = "security",
    request_body = TokenCreateRequest,
    responses((status = 201, description = "Issued; `secret` is the token", body = TokenCreated), (status = 400, description = "Bad name, scope, queue or expiry; nothing stored", body = ErrorBody), (status = 409, description = "A token that is not revoked has the name", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenCreateRequest>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<TokenCreated>), ApiError> {
    let expires_at = match req.expires_in {
        None => None,
        Some(FlexDuration(d)) if d.is_zero() => {
            return Err(ApiError::invalid("expires_in: at least 1ms"));
        }
        // Past a century the expiry makes no difference; keep the arithmetic in range.
        Some(FlexDuration(d)) => {
            let d = d.min(CENTURY);
            let span = jiff::SignedDuration::try_from(d)
                .map_err(|_| ApiError::invalid("expires_in: too long"))?;
            Some(
                jiff::Timestamp::now()
                    .checked_add(span)
                    .map_err(|_| ApiError::invalid("expires_in: too long"))?,
            )
        }
    };
    let issued = state
        .engine
        .token_create(TokenRequest {
            name: req.name,
            scopes: req.scopes,
            queues: req.queues,
            expires_at,
        })
        .await?;
    let t = &issued.token;
    let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
    let queues: Vec<&str> = t.queues.iter().map(|q| q.as_str()).collect();
    let audit = AuditTarget(format!(
        "token={} id={} scopes={} queues={}",
        t.name,
        t.id,
        scopes.join(","),
        if queues.is_empty() {
            "*".to_string()
        } else {
            queues.join(",")
        }
    ));
    Ok((
        StatusCode::CREATED,
        Extension(audit),
        Json(TokenCreated {
            token: issued.token,
            secret: issued.text,
        }),
    ))
}

/// Every token, revoked ones too, oldest first; never a secret.
#[utoipa::path(get, path = "/v1/tokens", operation_id = "list_tokens", tag = "security",
    responses((status = 200, description = "Oldest first", body = TokenList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        tokens: state.engine.token_list().await?,
    }))
}

/// Revokes a token for good: refused at once by this node, within 5 seconds by every node.
#[utoipa::path(delete, path = "/v1/tokens/{id}", operation_id = "revoke_token", tag = "security",
    params(("id" = TokenId, Path, description = "Token id")),
    responses((status = 200, description = "Revoked (revoking again keeps the first time)", body = ApiToken), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(Extension<AuditTarget>, Json<ApiToken>), ApiError> {
    let id: TokenId = id.parse().map_err(ApiError::from)?;
    let token = state.engine.token_revoke(id).await?;
    Ok((
        Extension(AuditTarget(format!("token={}", token.name))),
        Json(token),
    ))
}

/// The audit trail, newest first: admin and destructive actions with who, what, when and
/// from where.
#[utoipa::path(get, path = "/v1/audit", operation_id = "list_audit", tag = "security",
    params(AuditQuery),
    responses((status = 200, description = "Newest first", body = AuditPage), (status = 400, body = ErrorBody)))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit: 1 to 500"));
    }
    let entries = state
        .engine
        .audit_list(AuditListParams {
            actor: q.actor,
            action: q.action,
            before: q.before,
            limit,
        })
        .await?;
    let next = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage { entries, next }))
}
