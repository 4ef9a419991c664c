//! Queue and dead-letter bodies.

use errand_core::{JobId, QueueInfo};
use serde::{Deserialize, Serialize};

/// Every queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueList {
    /// By name.
    pub queues: Vec<QueueInfo>,
}

/// Which dead jobs to requeue or purge. Naming nothing is refused unless `all` is true, so a
/// forgotten filter never empties the dead-letter set by accident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadSelectionRequest {
    /// Only this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only these jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<JobId>,
    /// Every dead job of every queue.
    #[serde(default)]
    pub all: bool,
}

/// How many records an operation touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CountResponse {
    /// The number.
    pub count: u64,
}
