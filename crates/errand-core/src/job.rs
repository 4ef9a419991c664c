//! A job as stores keep it and the API shows it, and a new job as producers describe it.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{JobId, JobKind, JobState, QueueName, ValidationError};

/// When a new job may first run. Resolved on the store's clock, not the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAt {
    /// As soon as a worker is free.
    Now,
    /// At this instant (milliseconds since the epoch).
    At(crate::Millis),
    /// This long after the store accepts it.
    After(Duration),
}

/// A job to insert, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Chosen by the caller so a batch knows its ids before the store answers.
    pub id: JobId,
    /// Which handler runs it.
    pub kind: JobKind,
    /// Which queue it waits in.
    pub queue: QueueName,
    /// The handler's input.
    pub payload: Value,
    /// Higher runs first within a queue.
    pub priority: i32,
    /// When it may first run.
    pub run_at: RunAt,
    /// How many attempts before it is dead.
    pub max_attempts: u32,
    /// How long one attempt may run before it counts as failed.
    pub timeout: Option<Duration>,
    /// Free-form labels to search by.
    pub tags: Vec<String>,
    /// Deduplicates enqueues: a repeat within the window returns the first job.
    pub idempotency_key: Option<String>,
    /// The schedule slot this job fires; the store keeps one job per slot.
    pub slot: Option<ScheduleSlot>,
    /// Who hears how it ended: a reply queue and a callback URL.
    pub notify: EndNotice,
    /// The key it waits its turn on, its tenant and its rate key.
    pub ordering: crate::ordering::JobOrdering,
    /// Which fields the caller left unset, for the queue's defaults to fill.
    pub inherit: Inherit,
    /// The jobs it waits for, its batch, and the workflow step it is.
    pub flow: crate::flow::NewJobFlow,
    /// Values only the worker running it sees (see [`crate::secrets`]).
    pub secrets: crate::Secrets,
}

/// Which of a new job's fields the caller left unset: the store fills them from the
/// queue's defaults ([`crate::queue::JobDefaults`]) in the insert's transaction, so every
/// node applies the queue's current defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inherit {
    /// `priority` was not given.
    pub priority: bool,
    /// `max_attempts` was not given.
    pub max_attempts: bool,
    /// `timeout` was not given.
    pub timeout: bool,
}

/// Who hears how a job ended, besides anyone reading it: a reply message in a queue
/// (request-reply) and a signed POST to a URL. Both are written in the transaction that ends
/// the job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndNotice {
    /// The queue that gets an `errand.reply` message when the job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reply_to: Option<QueueName>,
    /// Copied into the reply and every event, so the caller can match them to its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Where the job's end is POSTed (signed, retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// A schedule's slot: which schedule, and the instant (milliseconds) it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSlot {
    /// The schedule's name.
    pub schedule: String,
    /// The slot's instant in milliseconds since the epoch.
    pub at: crate::Millis,
}

/// What a running job reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub percent: Option<f64>,
    /// What it is doing now (no NUL characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub message: Option<String>,
}

/// A job as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    /// Time-ordered id.
    pub id: JobId,
    /// Which handler runs it.
    pub kind: JobKind,
    /// Which queue it waits in.
    pub queue: QueueName,
    /// Where it is in its life.
    pub state: JobState,
    /// The handler's input.
    pub payload: Value,
    /// Higher runs first within a queue.
    pub priority: i32,
    /// When it may (next) run.
    #[schema(value_type = String, format = DateTime)]
    pub run_at: Timestamp,
    /// Attempts started so far; the dequeue count.
    pub attempt: u32,
    /// Attempts allowed before the job is dead.
    pub max_attempts: u32,
    /// Longest one attempt may run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// The key that deduplicated its enqueue, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The schedule that fired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule slot it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub slot: Option<Timestamp>,
    /// What the handler returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The last failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last reported progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The last saved checkpoint; a retry starts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Value>,
    /// The worker holding (or that last held) the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When the current lease runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_expires_at: Option<Timestamp>,
    /// When it was enqueued.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// When its current or last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When it reached a final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The queue that gets a reply when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reply_to: Option<QueueName>,
    /// The caller's correlation id, copied into the reply and events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Where its end is POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The key it waits its turn on, its tenant and its rate key.
    #[serde(flatten)]
    pub ordering: crate::ordering::JobOrdering,
    /// Waiting for a place under its lock, concurrency or session key: not claimable
    /// until one frees (`GET /v1/jobs/{id}/explain` says which job holds it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parked: bool,
    /// Its workflow step, batch, the jobs it waits for, and the context the flow hands it.
    #[serde(flatten)]
    pub flow: crate::flow::JobFlow,
    /// Its secrets' names, each value shown as `"***"`: only the claim answer of the
    /// worker holding the lease carries the values.
    #[serde(default, skip_serializing_if = "crate::Secrets::is_empty")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub secrets: crate::Secrets,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Still running.
    Running,
    /// The handler finished well.
    Succeeded,
    /// The handler reported a failure.
    Failed,
    /// The worker stopped renewing its lease.
    LeaseExpired,
    /// The attempt outlived the job's timeout.
    TimedOut,
    /// The job was cancelled while this attempt ran.
    Cancelled,
}

impl AttemptOutcome {
    /// The name stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::LeaseExpired => "lease_expired",
            AttemptOutcome::TimedOut => "timed_out",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// A name no version of errand writes: the record is corrupt (or was written by a newer
    /// errand), and reading it as some outcome would misreport what happened.
    pub fn from_stored(s: &str) -> Result<Self, ValidationError> {
        Ok(match s {
            "running" => AttemptOutcome::Running,
            "succeeded" => AttemptOutcome::Succeeded,
            "failed" => AttemptOutcome::Failed,
            "lease_expired" => AttemptOutcome::LeaseExpired,
            "timed_out" => AttemptOutcome::TimedOut,
            "cancelled" => AttemptOutcome::Cancelled,
            other => {
                return Err(ValidationError::new(
                    "outcome",
                    format!("`{other}` is not an attempt outcome"),
                ))
            }
        })
    }
}

/// One execution of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1 for the first run.
    pub attempt: u32,
    /// The worker that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the hosted process that ran it ended and what it used (scripts and executables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::RunReport>,
}

impl Job {
    /// The job a store holds right after inserting `new`: no attempt yet, nothing reported.
    /// Stores build their insert answers with this instead of reading the row back.
    pub fn inserted(
        new: NewJob,
        state: JobState,
        run_at: crate::Millis,
        created_at: crate::Millis,
    ) -> Self {
        let created = crate::time::to_timestamp(created_at);
        Job {
            flow: Default::default(),
            id: new.id,
            kind: new.kind,
            queue: new.queue,
            state,
            payload: new.payload,
            priority: new.priority,
            run_at: crate::time::to_timestamp(run_at),
            attempt: 0,
            max_attempts: new.max_attempts,
            timeout_ms: new
                .timeout
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            tags: new.tags,
            idempotency_key: new.idempotency_key,
            schedule: new.slot.as_ref().map(|s| s.schedule.clone()),
            slot: new.slot.map(|s| crate::time::to_timestamp(s.at)),
            result: None,
            error: None,
            progress: None,
            checkpoint: None,
            worker: None,
            lease_expires_at: None,
            created_at: created,
            updated_at: created,
            started_at: None,
            finished_at: None,
            reply_to: new.notify.reply_to,
            correlation_id: new.notify.correlation_id,
            callback_url: new.notify.callback_url,
            ordering: new.ordering,
            parked: false,
            secrets: new.secrets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AttemptOutcome;

    #[test]
    fn every_outcome_reads_back_as_itself() {
        for o in [
            AttemptOutcome::Running,
            AttemptOutcome::Succeeded,
            AttemptOutcome::Failed,
            AttemptOutcome::LeaseExpired,
            AttemptOutcome::TimedOut,
            AttemptOutcome::Cancelled,
        ] {
            assert_eq!(AttemptOutcome::from_stored(o.as_str()), Ok(o));
        }
    }

    #[test]
    fn an_unknown_stored_outcome_is_an_error_not_failed() {
        assert!(AttemptOutcome::from_stored("exploded").is_err());
        assert!(AttemptOutcome::from_stored("").is_err());
    }
}
