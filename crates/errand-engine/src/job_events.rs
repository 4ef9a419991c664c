//! Job state changes, broadcast inside the process (waiters for a result, event streams).

use errand_core::{JobId, JobState, QueueName};

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
