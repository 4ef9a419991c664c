//! A schedule as users define it and stores keep it: a trigger, a job template and the
//! policies for overlapping runs and missed slots.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits::{FIRST_SLOT_HORIZON_DAYS, MAX_JITTER_MS};
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

impl JobTemplate {
    /// A new job from the template, ready now, with no keys or ordering: what a flow
    /// enqueues from a stored template (a step's compensation with `step` set, a batch's
    /// `on_complete` without). One place, so both stores build the same job.
    pub fn new_job(&self, step: Option<crate::flow::StepRef>) -> crate::NewJob {
        crate::NewJob {
            secrets: Default::default(),
            id: JobId::new(),
            kind: self.kind.clone(),
            queue: self.queue.clone(),
            payload: self.payload.clone(),
            priority: self.priority,
            run_at: crate::job::RunAt::Now,
            max_attempts: self.max_attempts,
            timeout: self.timeout_ms.map(std::time::Duration::from_millis),
            tags: self.tags.clone(),
            idempotency_key: None,
            slot: None,
            notify: Default::default(),
            ordering: Default::default(),
            inherit: Default::default(),
            flow: crate::flow::NewJobFlow {
                step,
                ..Default::default()
            },
        }
    }
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
    /// The jobs it fires carry the lock key `schedule:<name>`: never two running at once,
    /// anywhere (a late run waits for the one before it instead of overlapping).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub singleton: bool,
}

impl ScheduleSpec {
    /// Whether a slot's job may be written before the slot comes (see
    /// [`crate::schedule_plan::plan_ahead`]): only when firing does not depend on how the
    /// previous run is doing at the slot, which is `overlap: allow`.
    pub fn fires_ahead(&self) -> bool {
        self.overlap == OverlapPolicy::Allow
    }

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

impl ScheduleSpec {
    /// The trigger, once the whole definition is one errand will run as meant: a cron
    /// expression that fires within [`FIRST_SLOT_HORIZON_DAYS`] of `now` (one that never
    /// fires, like `0 0 30 2 *`, is refused), and a `jitter` of at most
    /// [`MAX_JITTER_MS`] and, for an interval schedule, at most the interval. Every way a
    /// schedule is defined (the API, `errand.toml`) goes through this.
    ///
    /// # Errors
    /// What [`trigger`](Self::trigger) refuses, an unknown `timezone` (for an interval
    /// schedule too), and the rules above, each naming its field.
    pub fn validate(&self, now: Timestamp) -> Result<Trigger, ValidationError> {
        let trigger = self.trigger()?;
        // An interval schedule's zone is only shown, but one shown wrongly (as UTC) is
        // refused too.
        crate::schedule::time_zone(&self.timezone)?;
        if let Some(expr) = &self.cron {
            let horizon = now
                .saturating_add(jiff::SignedDuration::from_hours(
                    FIRST_SLOT_HORIZON_DAYS * 24,
                ))
                .unwrap_or(Timestamp::MAX);
            match trigger.next_after(now) {
                Some(first) if first <= horizon => {}
                Some(first) => {
                    return Err(ValidationError::new(
                        "cron",
                        format!(
                            "`{expr}` first fires at {first}, more than {} years from now",
                            FIRST_SLOT_HORIZON_DAYS / 366
                        ),
                    ));
                }
                None => {
                    return Err(ValidationError::new(
                        "cron",
                        format!("`{expr}` never fires: no date matches it (like 30 February)"),
                    ));
                }
            }
        }
        if self.jitter_ms > MAX_JITTER_MS {
            return Err(ValidationError::new(
                "jitter",
                format!(
                    "{} is longer than a day, the most a job may be spread",
                    crate::duration::format(std::time::Duration::from_millis(self.jitter_ms))
                ),
            ));
        }
        if let Some(every) = self.every_ms.filter(|every| self.jitter_ms > *every) {
            return Err(ValidationError::new(
                "jitter",
                format!(
                    "{} is longer than the interval ({}): a job would start after the next slot",
                    crate::duration::format(std::time::Duration::from_millis(self.jitter_ms)),
                    crate::duration::format(std::time::Duration::from_millis(every))
                ),
            ));
        }
        Ok(trigger)
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
    /// The next slot whose job is not written yet. A slot whose job was written ahead (see
    /// `overlap: allow`) is `last_fire_at` until it comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_fire_at: Option<Timestamp>,
    /// The last slot that fired (its job written, possibly ahead of the slot).
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
    /// When it last changed: its definition, a pause or resume, or a fire.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl Schedule {
    /// The next slot still to come at `now`, counting one whose job was written ahead (which
    /// `next_fire_at` has already moved past): what a person asking "when does it run next"
    /// means. `None` when it never fires again.
    pub fn next_slot(&self, now: Timestamp) -> Option<Timestamp> {
        self.last_fire_at
            .filter(|last| *last > now)
            .or(self.next_fire_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cron: Option<&str>, every_ms: Option<u64>, jitter_ms: u64) -> ScheduleSpec {
        ScheduleSpec {
            name: ScheduleName::parse("s").unwrap(),
            cron: cron.map(str::to_string),
            every_ms,
            timezone: "UTC".into(),
            job: JobTemplate {
                kind: JobKind::parse("k").unwrap(),
                queue: QueueName::default_queue(),
                payload: Value::Null,
                priority: 0,
                max_attempts: 1,
                timeout_ms: None,
                tags: vec![],
            },
            overlap: OverlapPolicy::default(),
            catch_up: CatchUpPolicy::default(),
            catch_up_window_ms: 3_600_000,
            jitter_ms,
            singleton: false,
        }
    }

    fn now() -> Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_cron_that_never_fires_is_refused_and_a_rare_one_is_not() {
        let never = spec(Some("0 0 30 2 *"), None, 0)
            .validate(now())
            .unwrap_err();
        assert_eq!(never.field, "cron");
        assert!(never.message.contains("never fires"), "{}", never.message);
        assert!(spec(Some("0 0 31 4 *"), None, 0).validate(now()).is_err());
        assert!(spec(Some("0 0 29 2 *"), None, 0).validate(now()).is_ok());
        assert!(spec(Some("0 3 * * *"), None, 0).validate(now()).is_ok());
    }

    #[test]
    fn an_unknown_zone_is_refused_for_an_interval_schedule_too() {
        for mut s in [
            spec(None, Some(300_000), 0),
            spec(Some("0 3 * * *"), None, 0),
        ] {
            s.timezone = "Mars/Olympus".into();
            let err = s.validate(now()).unwrap_err();
            assert_eq!(err.field, "timezone");
            assert!(err.message.contains("Mars/Olympus"), "{}", err.message);
        }
        let mut paris = spec(None, Some(300_000), 0);
        paris.timezone = "Europe/Paris".into();
        assert!(paris.validate(now()).is_ok());
    }

    #[test]
    fn jitter_is_at_most_a_day_and_at_most_the_interval() {
        let day = MAX_JITTER_MS;
        assert!(spec(Some("0 3 * * *"), None, day).validate(now()).is_ok());
        let long = spec(Some("0 3 * * *"), None, day + 1)
            .validate(now())
            .unwrap_err();
        assert_eq!(long.field, "jitter");
        assert!(
            long.message.contains("longer than a day"),
            "{}",
            long.message
        );
        assert!(spec(None, Some(60_000), 60_000).validate(now()).is_ok());
        let over = spec(None, Some(60_000), 60_001)
            .validate(now())
            .unwrap_err();
        assert_eq!(over.field, "jitter");
        assert!(over.message.contains("interval"), "{}", over.message);
    }

    #[test]
    fn the_next_slot_counts_one_written_ahead() {
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let mut s = Schedule {
            spec: spec(None, Some(1_000), 0),
            paused: false,
            next_fire_at: Some(at(2)),
            last_fire_at: Some(at(1)),
            last_job_id: None,
            last_job_state: None,
            buffered_slot: None,
            created_at: at(0),
            updated_at: at(0),
        };
        assert_eq!(
            s.next_slot(at(0)),
            Some(at(1)),
            "slot 1 written ahead, still to come"
        );
        assert_eq!(s.next_slot(at(1)), Some(at(2)), "slot 1 came");
        s.last_fire_at = None;
        assert_eq!(s.next_slot(at(0)), Some(at(2)));
        s.next_fire_at = None;
        assert_eq!(s.next_slot(at(0)), None, "never again");
    }
}
