//! Batches: many jobs enqueued as one, with one `on_complete` job (and callback) when every
//! job of the batch has ended. Stores count ends in the transaction of each end; the
//! rules about when a batch completes and what its `on_complete` job gets live here.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::BatchId;
use crate::schedule_spec::JobTemplate;
use crate::{JobId, JobState, ValidationError};

/// Most failed job ids an `on_complete` context lists (`failed_truncated` says more).
pub const MAX_FAILED_IDS: usize = 1000;

/// Where a batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Jobs may still be added; it cannot complete yet.
    Open,
    /// No more jobs; it completes when its last job ends.
    Closed,
    /// Every job ended and `on_complete` (if any) was enqueued, once.
    Completed,
}

impl BatchState {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Open => "open",
            BatchState::Closed => "closed",
            BatchState::Completed => "completed",
        }
    }

    /// Reads a stored or query name.
    ///
    /// # Errors
    /// Anything but `open`, `closed` or `completed`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "open" => Ok(BatchState::Open),
            "closed" => Ok(BatchState::Closed),
            "completed" => Ok(BatchState::Completed),
            other => Err(ValidationError::new(
                "state",
                format!("`{other}` is not open, closed or completed"),
            )),
        }
    }
}

/// A batch to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBatch {
    /// Chosen by the caller.
    pub id: BatchId,
    /// Enqueued once when every job has ended (its context: [`completion_context`]).
    pub on_complete: Option<JobTemplate>,
    /// POSTed (signed, retried) when the batch completes.
    pub callback_url: Option<String>,
    /// Keep it open for more jobs (`POST /v1/batches/{id}/jobs`) until closed.
    pub open: bool,
}

/// How many of a batch's jobs ended which way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchCounts {
    /// Jobs in the batch.
    pub total: u64,
    /// Not ended yet.
    pub pending: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Dead.
    pub dead: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl BatchCounts {
    /// Counts one job ending in `state` (a final state); anything else changes nothing.
    pub fn count_end(&mut self, state: JobState) {
        let slot = match state {
            JobState::Succeeded => &mut self.succeeded,
            JobState::Dead => &mut self.dead,
            JobState::Cancelled => &mut self.cancelled,
            _ => return,
        };
        *slot += 1;
        self.pending = self.pending.saturating_sub(1);
    }

    /// Uncounts an end (a dead or cancelled job made available again).
    pub fn uncount_end(&mut self, state: JobState) {
        let slot = match state {
            JobState::Succeeded => &mut self.succeeded,
            JobState::Dead => &mut self.dead,
            JobState::Cancelled => &mut self.cancelled,
            _ => return,
        };
        *slot = slot.saturating_sub(1);
        self.pending += 1;
    }
}

/// Whether a batch in `state` with `counts` completes now: closed, with nothing pending.
pub fn completes(state: BatchState, counts: &BatchCounts) -> bool {
    state == BatchState::Closed && counts.pending == 0
}

/// A batch as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Batch {
    /// Its id.
    pub id: BatchId,
    /// Where it is.
    pub state: BatchState,
    /// Its jobs by how they ended.
    pub counts: BatchCounts,
    /// The job enqueued when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<JobTemplate>,
    /// The id of the `on_complete` job, once enqueued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete_job_id: Option<JobId>,
    /// Where its completion is POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
}

/// The `on_complete` job's context (and the callback's body's `batch`): `{"batch": {"id",
/// "total", "succeeded", "dead", "cancelled", "failed": [job ids, at most
/// MAX_FAILED_IDS], "failed_truncated": bool}}`. `failed` lists dead and cancelled jobs.
pub fn completion_context(id: BatchId, counts: &BatchCounts, failed: &[JobId]) -> Value {
    let shown = &failed[..failed.len().min(MAX_FAILED_IDS)];
    serde_json::json!({
        "batch": {
            "id": id,
            "total": counts.total,
            "succeeded": counts.succeeded,
            "dead": counts.dead,
            "cancelled": counts.cancelled,
            "failed": shown,
            "failed_truncated": counts.dead + counts.cancelled > shown.len() as u64,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn counts(total: u64) -> BatchCounts {
        BatchCounts {
            total,
            pending: total,
            ..BatchCounts::default()
        }
    }

    #[test]
    fn ends_are_counted_and_uncounted() {
        let mut c = counts(4);
        c.count_end(JobState::Succeeded);
        c.count_end(JobState::Dead);
        c.count_end(JobState::Cancelled);
        c.count_end(JobState::Running);
        c.count_end(JobState::Blocked);
        assert_eq!(
            c,
            BatchCounts {
                total: 4,
                pending: 1,
                succeeded: 1,
                dead: 1,
                cancelled: 1
            }
        );
        c.uncount_end(JobState::Dead);
        c.uncount_end(JobState::Available);
        assert_eq!((c.pending, c.dead), (2, 0));
        // Never below zero, whatever a store hands in.
        let mut z = counts(0);
        z.count_end(JobState::Succeeded);
        z.uncount_end(JobState::Cancelled);
        assert_eq!((z.pending, z.cancelled, z.succeeded), (1, 0, 1));
    }

    #[test]
    fn only_a_closed_batch_with_nothing_pending_completes() {
        let mut c = counts(1);
        assert!(!completes(BatchState::Closed, &c));
        c.count_end(JobState::Succeeded);
        assert!(completes(BatchState::Closed, &c));
        assert!(!completes(BatchState::Open, &c));
        assert!(!completes(BatchState::Completed, &c), "once");
        assert!(
            completes(BatchState::Closed, &counts(0)),
            "an empty closed batch"
        );
    }

    #[test]
    fn the_completion_context_lists_failures_up_to_the_limit() {
        let id = BatchId(Uuid::from_u128(1));
        let failed: Vec<JobId> = (0..MAX_FAILED_IDS as u128 + 5)
            .map(|i| JobId(Uuid::from_u128(i + 10)))
            .collect();
        let mut c = counts(failed.len() as u64 + 2);
        for _ in 0..2 {
            c.count_end(JobState::Succeeded);
        }
        for i in 0..failed.len() {
            c.count_end(if i % 2 == 0 {
                JobState::Dead
            } else {
                JobState::Cancelled
            });
        }
        let ctx = completion_context(id, &c, &failed);
        let b = &ctx["batch"];
        assert_eq!(b["failed"].as_array().unwrap().len(), MAX_FAILED_IDS);
        assert_eq!(b["failed"][0], serde_json::json!(failed[0]));
        assert_eq!(b["failed_truncated"], true);
        assert_eq!(b["total"], c.total);
        assert_eq!(b["succeeded"], 2);
        assert_eq!(
            b["dead"].as_u64().unwrap() + b["cancelled"].as_u64().unwrap(),
            failed.len() as u64
        );

        let few = &failed[..3];
        let mut c = counts(5);
        c.count_end(JobState::Succeeded);
        c.count_end(JobState::Succeeded);
        for _ in few {
            c.count_end(JobState::Dead);
        }
        let ctx = completion_context(id, &c, few);
        assert_eq!(ctx["batch"]["failed"].as_array().unwrap().len(), 3);
        assert_eq!(ctx["batch"]["failed_truncated"], false);
        assert_eq!(ctx["batch"]["id"], serde_json::json!(id));
    }
}
