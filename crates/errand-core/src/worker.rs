//! Consumer liveness: which workers have asked for work, where, for what, and when.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Millis, NodeId};

/// What one node saw of one worker since it last reported: the engine gathers these in
/// memory on every claim and writes them in batches, so claims stay one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSeen {
    /// The worker's name (the `worker` of its claims).
    pub name: String,
    /// The node it claimed through.
    pub node: NodeId,
    /// The queues it asked for.
    pub queues: Vec<String>,
    /// The kinds it asked for; empty means any.
    pub kinds: Vec<String>,
    /// Its latest claim.
    pub last_claim_at: Millis,
}

/// A worker as `GET /v1/workers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// Its name.
    pub name: String,
    /// The node it last claimed through.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// The queues it asked for.
    pub queues: Vec<String>,
    /// The kinds it asked for; empty means any.
    pub kinds: Vec<String>,
    /// Its latest claim.
    #[schema(value_type = String, format = DateTime)]
    pub last_claim_at: Timestamp,
    /// Jobs it holds leases on now.
    pub jobs_in_flight: u64,
}
