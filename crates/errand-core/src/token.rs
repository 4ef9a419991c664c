//! API tokens: who may call errand, and for what. A token is `errand_<id>_<secret>`; the
//! store keeps the id, the SHA-256 of the secret and what the token may do, never the
//! secret. See `docs/security.md`.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::uuid_id;
use crate::{QueueName, ValidationError};

uuid_id!(
    /// A token's id: the public part of the token, shown wherever the token is named.
    TokenId,
    "token id"
);

/// What a token may do. A route needs one scope; `admin` holds every other.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Enqueue jobs, start workflows and batches, and read what was enqueued.
    Enqueue,
    /// Claim, heartbeat and settle jobs, and write the logs of held jobs: what a worker does.
    Work,
    /// Read everything: jobs, queues, schedules, events, the dashboard's pages.
    Read,
    /// Everything, including destructive and configuration changes and tokens.
    Admin,
}

impl Scope {
    /// Every scope, narrowest first.
    pub const ALL: [Scope; 4] = [Scope::Enqueue, Scope::Work, Scope::Read, Scope::Admin];

    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Enqueue => "enqueue",
            Scope::Work => "work",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token holding `held` may do what needs `self`.
    pub fn granted_by(self, held: &[Scope]) -> bool {
        held.iter().any(|h| *h == self || *h == Scope::Admin)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "scopes",
                    format!("`{s}` is not a scope (enqueue, work, read, admin)"),
                )
            })
    }
}

/// A token as errand shows it: everything but its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    /// Its id (the token starts with `errand_<id without dashes>_`).
    pub id: TokenId,
    /// A name for people (unique among tokens not revoked); the audit trail records it.
    pub name: String,
    /// What it may do (never empty).
    pub scopes: Vec<Scope>,
    /// The queues it is limited to; empty: every queue.
    #[serde(default)]
    pub queues: Vec<QueueName>,
    /// When it was created (the store's clock).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// When it was last used (recorded at most about once a minute per node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked token never works again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

/// A token to store: what it may do and the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    /// Its id, chosen by the caller (it is part of the token text).
    pub id: TokenId,
    /// Its name.
    pub name: String,
    /// SHA-256 of the secret part.
    pub secret_hash: [u8; 32],
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The queues it is limited to (empty: every queue).
    pub queues: Vec<QueueName>,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
}

/// A token as the store holds it, with the hash its secret is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    /// The token.
    pub token: ApiToken,
    /// SHA-256 of the secret part.
    pub secret_hash: [u8; 32],
    /// Dashboard sessions made from it at or before this time are over ("sign out").
    pub sessions_ended_at: Option<jiff::Timestamp>,
}
