//! A schedule as users define it and stores keep it: a trigger, a job template and the
//! policies for overlapping runs and missed slots.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schedule::Trigger;
use crate::{JobId, JobKind, JobState, QueueName, ScheduleName, ValidationError};

/// What to do when a slot comes while the previous run of the schedule has not ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Start the new run anyway.
    Allow,
    /// Skip this slot (Kubernetes' `Forbid`).
    #[default]
    Skip,
    /// Run once more after the current run ends; further slots meanwhile are skipped.
    BufferOne,
    /// Cancel the running job and start the new one.
    Replace,
}

/// What to do with slots missed while errand was down or the schedule was paused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUpPolicy {
    /// Missed slots are dropped.
    Skip,
    /// One late job stands for all missed slots.
    #[default]
    Once,
    /// Every missed slot within the catch-up window runs.
    All,
}

/// The job a schedule enqueues at each slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobTemplate {
    /// Which handler runs it.
    pub kind: JobKind,
    /// Its queue.
    pub queue: QueueName,
    /// Its input.
    pub payload: Value,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// Longest one attempt may run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A schedule's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleSpec {
    /// Unique name among schedules.
    pub name: ScheduleName,
    /// Cron expression, when the schedule is a cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Interval in milliseconds, when the schedule is an interval schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// IANA time zone the cron expression is read in.
    pub timezone: String,
    /// The job each slot enqueues.
    pub job: JobTemplate,
    /// Overlapping runs.
    pub overlap: OverlapPolicy,
    /// Missed slots.
    pub catch_up: CatchUpPolicy,
    /// With `catch_up: all`, how far back missed slots are run, in milliseconds.
    pub catch_up_window_ms: u64,
    /// Each job's start is delayed by a random amount up to this, in milliseconds.
    #[serde(default)]
    pub jitter_ms: u64,
}

impl ScheduleSpec {
    /// The trigger this spec describes.
    ///
    /// # Errors
    /// Neither or both of `cron` and `every`, a bad expression, an unknown zone.
    pub fn trigger(&self) -> Result<Trigger, ValidationError> {
        match (&self.cron, self.every_ms) {
            (Some(expr), None) => Trigger::cron(expr, &self.timezone),
            (None, Some(ms)) => Trigger::every(std::time::Duration::from_millis(ms)),
            _ => Err(ValidationError::new(
                "cron",
                "give exactly one of cron and every",
            )),
        }
    }
}

/// A schedule as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Schedule {
    /// The definition.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// Paused schedules fire nothing; their missed slots follow the catch-up policy on resume.
    pub paused: bool,
    /// The next slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_fire_at: Option<Timestamp>,
    /// The last slot that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_fire_at: Option<Timestamp>,
    /// The last job it enqueued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job_id: Option<JobId>,
    /// That job's state now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job_state: Option<JobState>,
    /// A slot held back by `buffer_one` until the running job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub buffered_slot: Option<Timestamp>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}
