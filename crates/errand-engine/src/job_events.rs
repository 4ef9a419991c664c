//! Job state changes, broadcast inside the process (waiters for a result, event streams).

use errand_core::{JobId, JobState, QueueName};
use uuid::Uuid;

/// A job changed state.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// Which job.
    pub id: JobId,
    /// Its queue.
    pub queue: QueueName,
    /// Its new state.
    pub state: JobState,
}

/// Log lines of a run were stored by this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppended {
    /// The job or continuous instance that printed them.
    pub owner: Uuid,
    /// Its attempt (or restart).
    pub attempt: u32,
    /// The number of the last line stored.
    pub last_seq: u64,
}
