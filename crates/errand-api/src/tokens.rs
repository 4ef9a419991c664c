//! `/v1/tokens` and `/v1/audit`: API tokens and the audit trail.

use errand_core::duration::FlexDuration;
use errand_core::{ApiToken, AuditEntry, QueueName, Scope};
use serde::{Deserialize, Serialize};

/// `POST /v1/tokens`: a token to issue.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateRequest {
    /// A name for people, unique among tokens not revoked (the audit trail records it): 1 to
    /// 200 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// What it may do: any of `enqueue`, `work`, `read`, `admin` (at least one).
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// Only these queues (empty or absent: every queue).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueName>,
    /// How long it works (`"90d"`, `"12h"` or milliseconds; at least 1 ms, at most a
    /// century is kept); absent: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<errand_core::duration::PositiveFlexDuration>)]
    pub expires_in: Option<FlexDuration>,
}

/// Answer of `POST /v1/tokens`: the token's record and its text, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenCreated {
    /// The record (no secret).
    pub token: ApiToken,
    /// The whole token, `errand_<id>_<secret>`: errand keeps only a hash of it and will
    /// never show it again.
    pub secret: String,
}

/// Answer of `GET /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenList {
    /// Every token, revoked ones too, oldest first.
    pub tokens: Vec<ApiToken>,
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this actor (a token's name, `local`, `env-admin`, `cli`).
    pub actor: Option<String>,
    /// Only this action (an operation id such as `purge_dead_jobs`).
    pub action: Option<String>,
    /// Cursor: entries older than this id (the previous page's `next`).
    pub before: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Answer of `GET /v1/audit`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}
