//! What both stores do with schedules that does not depend on SQL: reading a stored row
//! into a [`Schedule`], the compare-and-set rule of a fire, and what a fire records as the
//! schedule's last fire. Each store reads and writes the columns; the meaning lives here.

use errand_core::schedule_spec::{Schedule, ScheduleSpec};
use errand_core::time::{to_millis, to_timestamp};
use errand_core::{Job, JobId, JobState, Millis};
use serde_json::Value;

use crate::{ScheduleFireParams, StoreError};

/// A `schedules` row joined with its last job's state, as a store reads it.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    /// The definition as stored JSON.
    pub spec: Value,
    /// Whether it is paused.
    pub paused: bool,
    /// The next slot.
    pub next_fire_at: Option<Millis>,
    /// The last slot fired.
    pub last_fire_at: Option<Millis>,
    /// The last job enqueued.
    pub last_job_id: Option<JobId>,
    /// The slot `buffer_one` holds back.
    pub buffered_slot: Option<Millis>,
    /// When it was created.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// The last job's state as stored text (`None`: no job, or it was pruned).
    pub last_job_state: Option<String>,
}

impl ScheduleRow {
    /// The schedule this row holds.
    ///
    /// # Errors
    /// `Corrupt` when the stored definition or state does not read back.
    pub fn into_schedule(self) -> Result<Schedule, StoreError> {
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        Ok(Schedule {
            spec: serde_json::from_value::<ScheduleSpec>(self.spec).map_err(|e| corrupt(&e))?,
            paused: self.paused,
            next_fire_at: self.next_fire_at.map(to_timestamp),
            last_fire_at: self.last_fire_at.map(to_timestamp),
            last_job_id: self.last_job_id,
            last_job_state: self
                .last_job_state
                .map(|s| s.parse::<JobState>())
                .transpose()
                .map_err(|e| corrupt(&e))?,
            buffered_slot: self.buffered_slot.map(to_timestamp),
            created_at: to_timestamp(self.created_at),
            updated_at: to_timestamp(self.updated_at),
        })
    }
}

/// The part of a schedule's row a fire compares against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleCas {
    /// Its `next_fire_at` now.
    pub next_fire_at: Option<Millis>,
    /// Its `last_job_id` now.
    pub last_job_id: Option<JobId>,
    /// Whether it is paused now.
    pub paused: bool,
    /// Its `updated_at` now.
    pub updated_at: Millis,
}

impl ScheduleFireParams {
    /// Whether this decision still applies to the schedule as stored now (`None`: deleted)
    /// at store time `now`. A pause overtakes a decision that writes a slot still to come:
    /// a paused schedule writes nothing ahead (a manual run or a backfill still goes).
    pub fn holds(&self, current: Option<ScheduleCas>, now: Millis) -> bool {
        current.is_some_and(|c| {
            c.next_fire_at == self.expected_next_fire_at
                && c.last_job_id == self.expected_last_job_id
                && self.expected_updated_at.is_none_or(|u| u == c.updated_at)
                && !(c.paused && self.writes_ahead(now))
        })
    }

    /// Whether it writes the job of a slot after `now`.
    pub fn writes_ahead(&self, now: Millis) -> bool {
        self.jobs
            .iter()
            .any(|j| j.slot.as_ref().is_some_and(|s| s.at > now))
    }
}

/// A schedule as a write (a replace or a pause) left it, with the jobs that write took back:
/// those it had written ahead for slots still to come, now cancelled. The engine publishes
/// them as it does any cancel, so metrics, waiters and the gates of their queues hear of it.
#[derive(Debug, Clone)]
pub struct ScheduleChange {
    /// The schedule after the write.
    pub schedule: Schedule,
    /// The jobs the write cancelled, in slot order.
    pub taken_back: Vec<Job>,
}

/// What taking back a job written ahead for a slot still to come does with it (see
/// [`Store::schedule_pause`](crate::Store::schedule_pause)), by its state now. The rule is
/// the same on every store; only the statements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeBack {
    /// It has not started: cancel it, and free its slot.
    Cancel,
    /// It is gone: free its slot.
    Free,
    /// Someone ran it by hand, or it ended: it stays, and so does its slot.
    Keep,
}

impl TakeBack {
    /// The take-back of a job in `state` (`None`: no such job).
    pub fn of(state: Option<JobState>) -> Self {
        match state {
            None => Self::Free,
            Some(JobState::Scheduled | JobState::Available) => Self::Cancel,
            Some(_) => Self::Keep,
        }
    }
}

/// What a fire records on the schedule: the job of the newest slot becomes its last job, and
/// that slot its last fire (a manual run has no slot and leaves the last fire as it was).
/// The store applies it only forwards: a fire of slots older than the last fire (a
/// backfill) changes neither, so the overlap policy keeps watching the newest run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FireRecord {
    /// New `last_fire_at`, or keep the old one.
    pub last_fire_at: Option<Millis>,
    /// New `last_job_id`, or keep the old one.
    pub last_job_id: Option<JobId>,
}

impl FireRecord {
    /// The record of having enqueued `fired`.
    pub fn of(fired: &[Job]) -> Self {
        // The newest slot; among jobs without one (manual runs), the last.
        let last = fired.iter().max_by_key(|j| j.slot);
        Self {
            last_fire_at: last.and_then(|j| j.slot).map(to_millis),
            last_job_id: last.map(|j| j.id),
        }
    }
}
