//! Job and schedule events: what the event log records, what `GET /v1/events` streams and
//! what subscriptions receive.
//!
//! Every change of a job's state that an application may care about is written to the
//! store's event log in the same transaction as the change, so an event is never lost nor
//! recorded for a change that did not happen. Events are read back in commit order by
//! [`EventId`].

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Job, JobId, JobKind, JobState, Millis, Progress, QueueName, ValidationError};

/// Results whose JSON text is longer than this are not copied into events (the event says
/// how long it was; the job holds it): an event log of large results would double the
/// store's size and slow every stream.
pub const EVENT_RESULT_MAX_BYTES: usize = 8 * 1024;

/// An event's place in the log: events sort by it in commit order, on every store.
///
/// `tx` orders commits (PostgreSQL: the writing transaction's id, read only once every
/// older transaction has ended; SQLite, whose single writer commits in order: the row id),
/// `seq` orders events within one. Shown as `tx-seq`; clients treat it as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    /// Commit order.
    pub tx: u64,
    /// Order within a commit (and overall, on SQLite).
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.tx, self.seq)
    }
}

impl FromStr for EventId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ValidationError::new("event id", format!("`{s}` is not an event id"));
        let (tx, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(EventId {
            tx: tx.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// A job was stored, or made ready again by hand (retry, dead requeue).
    #[serde(rename = "job.enqueued")]
    JobEnqueued,
    /// A worker claimed a job: an attempt began.
    #[serde(rename = "job.started")]
    JobStarted,
    /// A running job reported progress.
    #[serde(rename = "job.progress")]
    JobProgress,
    /// A job finished well.
    #[serde(rename = "job.succeeded")]
    JobSucceeded,
    /// An attempt failed (or its lease ran out) and the job will be tried again.
    #[serde(rename = "job.failed")]
    JobFailed,
    /// An attempt failed and the job has none left.
    #[serde(rename = "job.dead")]
    JobDead,
    /// A job was cancelled.
    #[serde(rename = "job.cancelled")]
    JobCancelled,
    /// A schedule fired a slot (the job it enqueued has its own `job.enqueued`).
    #[serde(rename = "schedule.fired")]
    ScheduleFired,
    /// Every job of a closed batch ended (its `on_complete` job, if any, has its own
    /// `job.enqueued`).
    #[serde(rename = "batch.completed")]
    BatchCompleted,
}

impl EventType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [EventType; 9] = [
        EventType::JobEnqueued,
        EventType::JobStarted,
        EventType::JobProgress,
        EventType::JobSucceeded,
        EventType::JobFailed,
        EventType::JobDead,
        EventType::JobCancelled,
        EventType::ScheduleFired,
        EventType::BatchCompleted,
    ];

    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JobEnqueued => "job.enqueued",
            EventType::JobStarted => "job.started",
            EventType::JobProgress => "job.progress",
            EventType::JobSucceeded => "job.succeeded",
            EventType::JobFailed => "job.failed",
            EventType::JobDead => "job.dead",
            EventType::JobCancelled => "job.cancelled",
            EventType::ScheduleFired => "schedule.fired",
            EventType::BatchCompleted => "batch.completed",
        }
    }

    /// The event a job's attempt or life ending records, by the state it ended in:
    /// succeeded, dead, cancelled, or back to waiting (`job.failed`, a retry will come).
    /// `None` for states no ending leads to.
    pub fn for_end(state: JobState) -> Option<EventType> {
        match state {
            JobState::Succeeded => Some(EventType::JobSucceeded),
            JobState::Dead => Some(EventType::JobDead),
            JobState::Cancelled => Some(EventType::JobCancelled),
            JobState::Available | JobState::Scheduled => Some(EventType::JobFailed),
            JobState::Running | JobState::Blocked => None,
        }
    }
}

impl FromStr for EventType {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "event type",
                    format!(
                        "`{s}` is not an event type (one of {})",
                        EventType::ALL.map(EventType::as_str).join(", ")
                    ),
                )
            })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as an event shows it: enough to act on without asking for the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSnapshot {
    /// The job.
    pub id: JobId,
    /// Its queue.
    pub queue: QueueName,
    /// Its kind.
    pub kind: JobKind,
    /// Its state right after the change.
    pub state: JobState,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The caller's correlation id, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The schedule that fired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Progress (`job.progress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The result (`job.succeeded`), when its JSON is at most [`EVENT_RESULT_MAX_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The length of a result too long to copy here; read it from the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<u64>,
    /// The failure (`job.failed`, `job.dead`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl JobSnapshot {
    /// The snapshot of `job` for an event of type `ty`: progress, result and error only
    /// where that type is about them.
    pub fn of(job: &Job, ty: EventType) -> Self {
        let (result, result_bytes) = match (ty, &job.result) {
            (EventType::JobSucceeded, Some(r)) => {
                let len = serde_json::to_string(r).map_or(0, |t| t.len());
                if len <= EVENT_RESULT_MAX_BYTES {
                    (Some(r.clone()), None)
                } else {
                    (None, Some(len as u64))
                }
            }
            _ => (None, None),
        };
        JobSnapshot {
            id: job.id,
            queue: job.queue.clone(),
            kind: job.kind.clone(),
            state: job.state,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            tags: job.tags.clone(),
            correlation_id: job.correlation_id.clone(),
            schedule: job.schedule.clone(),
            progress: (ty == EventType::JobProgress)
                .then(|| job.progress.clone())
                .flatten(),
            result,
            result_bytes,
            error: matches!(ty, EventType::JobFailed | EventType::JobDead)
                .then(|| job.error.clone())
                .flatten(),
        }
    }
}

/// A schedule slot fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleFired {
    /// The schedule.
    pub schedule: String,
    /// The slot's instant.
    #[schema(value_type = String, format = DateTime)]
    pub slot: Timestamp,
    /// The job it enqueued.
    pub job_id: JobId,
}

/// What an event says: everything but its place in the log. Stores keep this as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventBody {
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When (the store's clock).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The job it is about (`job.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSnapshot>,
    /// The slot that fired (`schedule.fired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleFired>,
    /// The batch that completed (`batch.completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub batch: Option<Value>,
}

impl EventBody {
    /// An event about a job that just changed, at `now` (store clock).
    pub fn job(job: &Job, ty: EventType, now: Millis) -> Self {
        EventBody {
            event_type: ty,
            at: crate::time::to_timestamp(now),
            job: Some(JobSnapshot::of(job, ty)),
            schedule: None,
            batch: None,
        }
    }

    /// A batch completed, at `now` (store clock): `batch` as shown (`Batch`, serialized).
    pub fn batch_completed(batch: Value, now: Millis) -> Self {
        EventBody {
            event_type: EventType::BatchCompleted,
            at: crate::time::to_timestamp(now),
            job: None,
            schedule: None,
            batch: Some(batch),
        }
    }

    /// A schedule slot fired and enqueued `job_id`, at `now` (store clock).
    pub fn schedule_fired(schedule: &str, slot: Millis, job_id: JobId, now: Millis) -> Self {
        EventBody {
            event_type: EventType::ScheduleFired,
            at: crate::time::to_timestamp(now),
            job: None,
            schedule: Some(ScheduleFired {
                schedule: schedule.to_owned(),
                slot: crate::time::to_timestamp(slot),
                job_id,
            }),
            batch: None,
        }
    }

    /// The job this event is about: the job's own, or the one a schedule enqueued.
    pub fn job_id(&self) -> Option<JobId> {
        self.job
            .as_ref()
            .map(|j| j.id)
            .or_else(|| self.schedule.as_ref().map(|s| s.job_id))
    }
}

/// An event as read from the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Its place in the log; resume after it with `Last-Event-ID`.
    #[schema(value_type = String, example = "1234-1234")]
    pub id: EventId,
    /// What it says.
    #[serde(flatten)]
    pub body: EventBody,
}

/// Which events a stream or a subscription wants. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only these types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<EventType>,
    /// Only events of jobs in this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueName>,
    /// Only events of jobs of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// Only events of this job (a `schedule.fired` matches the job it enqueued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    /// Only events of jobs carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl EventFilter {
    /// Whether `event` passes. A queue, kind or tag filter passes only job events.
    pub fn matches(&self, event: &EventBody) -> bool {
        if !self.types.is_empty() && !self.types.contains(&event.event_type) {
            return false;
        }
        if let Some(job) = self.job {
            if event.job_id() != Some(job) {
                return false;
            }
        }
        if self.queue.is_none() && self.kind.is_none() && self.tag.is_none() {
            return true;
        }
        let Some(snap) = &event.job else {
            return false;
        };
        self.queue.as_ref().is_none_or(|q| *q == snap.queue)
            && self.kind.as_ref().is_none_or(|k| *k == snap.kind)
            && self.tag.as_ref().is_none_or(|t| snap.tags.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_read_back_and_sort_in_commit_order() {
        let a = EventId { tx: 7, seq: 100 };
        let b = EventId { tx: 8, seq: 3 };
        assert!(a < b);
        assert_eq!(a.to_string().parse::<EventId>(), Ok(a));
        assert!("7".parse::<EventId>().is_err());
        assert!("x-1".parse::<EventId>().is_err());
    }

    #[test]
    fn every_event_type_reads_back_as_itself() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(Value::String(t.as_str().into()))
            );
        }
        assert!("job.exploded".parse::<EventType>().is_err());
    }
}
