//! The audit trail: who did which admin or destructive action, when, and from where.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Its place in the trail (grows with every entry; pages go by it).
    pub id: i64,
    /// When it was recorded (the store's clock).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who: the token's name, `local` (no auth on loopback), or `cli` (a command run
    /// against the store).
    pub actor: String,
    /// What, as `<thing>.<verb>`: `dead.purge`, `queue.pause`, `token.create`, ...
    pub action: String,
    /// What it was done to: a queue, a job id, a schedule, a token's name.
    pub target: String,
    /// The action's parameters and outcome (never a secret or a payload).
    #[schema(value_type = Object)]
    pub detail: Value,
    /// Where the request came from (the peer address), or empty.
    pub origin: String,
}

/// An action to record; the store sets `id` and `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Parameters and outcome.
    pub detail: Value,
    /// From where.
    pub origin: String,
}
