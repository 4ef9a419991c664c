//! Ordered sessions: jobs sharing a `session_key` run one at a time in enqueue order and
//! share durable state, read and written with a version for compare-and-set.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JobId;

/// Longest session state, as JSON text: state is a cursor or a small document, not a blob
/// store; bigger state belongs in the application's database.
pub const MAX_SESSION_STATE_BYTES: usize = 256 * 1024;

/// A session as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Session {
    /// The session key.
    pub key: String,
    /// The state (`null` until first set).
    pub state: Value,
    /// Bumped by every state change; 0 before the first. A write naming another version
    /// is refused (409).
    pub version: u64,
    /// The job whose turn it is (running, ready, waiting for a retry, or dead and
    /// blocking), if any job is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub head: Option<JobId>,
    /// Jobs of the session not finished yet, the head included.
    pub length: u64,
    /// The dead job the session waits behind until it is retried or the session is
    /// unblocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub blocked_by: Option<JobId>,
    /// When its state or head last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A session's state as a claim hands it to the head job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionState {
    /// The session key.
    pub key: String,
    /// The state (`null` until first set).
    pub state: Value,
    /// Its version; `complete` with `session_state` sets the next.
    pub version: u64,
}
