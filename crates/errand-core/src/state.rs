//! The states a job moves through.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Where a job is in its life.
///
/// `scheduled` → `available` → `running` → `succeeded`, or on failure back to `scheduled`
/// (a retry waits for its backoff) until no attempts are left: then `dead`. `cancelled` ends a
/// job that should not run. `blocked` waits for other jobs to end: its parents (`after`), or
/// the steps a workflow step depends on. (A session's later jobs stay `available`, parked.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waits for its `run_at` (a delayed job, or a retry after backoff).
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished well.
    Succeeded,
    /// Failed on its last attempt: the dead-letter set.
    Dead,
    /// Stopped by a user before it finished.
    Cancelled,
    /// Waits for other jobs to end (parents named by `after`, a workflow step's
    /// dependencies).
    Blocked,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
        JobState::Blocked,
    ];

    /// The name stores and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
            JobState::Blocked => "blocked",
        }
    }

    /// True for the states a user may send back to run now: dead, cancelled, or waiting
    /// for a retry.
    pub fn can_retry(self) -> bool {
        matches!(
            self,
            JobState::Dead | JobState::Cancelled | JobState::Scheduled
        )
    }

    /// True once the job will not run again by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "state",
                    format!(
                        "`{s}` is not a job state (one of scheduled, available, running, succeeded, dead, cancelled, blocked)"
                    ),
                )
            })
    }
}
