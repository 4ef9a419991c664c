//! A queue's load as stores count it.

use serde::{Deserialize, Serialize};

use crate::{JobState, QueueName};

/// Jobs per state in one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCounts {
    /// Waiting for `run_at`.
    pub scheduled: u64,
    /// Ready to claim.
    pub available: u64,
    /// Leased by a worker.
    pub running: u64,
    /// Finished well.
    pub succeeded: u64,
    /// Out of attempts.
    pub dead: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Waiting for another job.
    pub blocked: u64,
}

impl StateCounts {
    /// Adds `n` to the count of `state`.
    pub fn add(&mut self, state: JobState, n: u64) {
        let slot = match state {
            JobState::Scheduled => &mut self.scheduled,
            JobState::Available => &mut self.available,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Dead => &mut self.dead,
            JobState::Cancelled => &mut self.cancelled,
            JobState::Blocked => &mut self.blocked,
        };
        *slot += n;
    }
}

/// A queue's settings and load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueInfo {
    /// Its name.
    pub name: QueueName,
    /// Paused queues hand out no jobs.
    pub paused: bool,
    /// Jobs per state.
    pub counts: StateCounts,
    /// Age of the oldest job ready to run, in milliseconds; the autoscaling signal.
    pub oldest_available_age_ms: Option<u64>,
    /// Claims parked on this queue on the node that answered, waiting for work (stores
    /// answer 0; the engine counts). Shows idle workers, and tells a caller that a claim is
    /// waiting before it measures how fast an enqueue wakes it.
    #[serde(default)]
    pub waiting_claims: u32,
}
