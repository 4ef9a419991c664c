//! Schedule bodies.

use errand_core::duration::FlexDuration;
use errand_core::limits::DEFAULT_MAX_ATTEMPTS;
use errand_core::schedule_spec::{
    CatchUpPolicy, JobTemplate, OverlapPolicy, Schedule, ScheduleSpec,
};
use errand_core::{JobKind, QueueName, ScheduleName, ValidationError};
use serde::{Deserialize, Serialize};

use crate::schema::{Interval, PositiveDuration, StorableJson, Tag};
use crate::{EnqueueLimits, EnqueueRequest};

/// The job part of a schedule: what an enqueue takes, minus timing and idempotency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobTemplateRequest {
    /// Which handler runs it.
    #[schema(value_type = JobKind)]
    pub kind: String,
    /// Queue; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<QueueName>)]
    pub queue: Option<String>,
    /// The handler's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub payload: Option<serde_json::Value>,
    /// -1000 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
    /// Attempts before the job is dead, 1 to 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_attempts: Option<u32>,
    /// Longest one attempt may run; longer than zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PositiveDuration>)]
    pub timeout: Option<FlexDuration>,
    /// Labels, at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Tag>, max_items = 32)]
    pub tags: Vec<String>,
}

impl JobTemplateRequest {
    /// Checks every field (as an enqueue does) and builds the template to store, with
    /// which fields were left unset (a workflow step's job leaves them to the queue's
    /// defaults; a schedule's job fixes them to today's defaults).
    ///
    /// # Errors
    /// The first field that breaks a rule.
    pub fn into_template(
        self,
        limits: &EnqueueLimits,
    ) -> Result<(JobTemplate, errand_core::job::Inherit), ValidationError> {
        let inherit = errand_core::job::Inherit {
            priority: self.priority.is_none(),
            max_attempts: self.max_attempts.is_none(),
            timeout: self.timeout.is_none(),
        };
        let job = EnqueueRequest {
            kind: self.kind,
            queue: self.queue,
            payload: self.payload,
            priority: self.priority,
            max_attempts: self.max_attempts.or(Some(DEFAULT_MAX_ATTEMPTS)),
            timeout: self.timeout,
            tags: self.tags,
            ..EnqueueRequest::default()
        }
        .into_new_job(limits)?;
        Ok((
            JobTemplate {
                kind: job.kind,
                queue: job.queue,
                payload: job.payload,
                priority: job.priority,
                max_attempts: job.max_attempts,
                timeout_ms: job.timeout.map(millis),
                tags: job.tags,
            },
            inherit,
        ))
    }
}

/// `POST /v1/schedules` (and what `PUT /v1/schedules/{name}` stores).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Unique name (A-Z a-z 0-9 _ - . :).
    #[schema(value_type = ScheduleName)]
    pub name: String,
    /// Cron expression: 5 fields, 6 with seconds first, or `@hourly`, `@daily`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Interval instead of cron (`"30s"` or milliseconds), at least 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Interval>)]
    pub every: Option<FlexDuration>,
    /// IANA time zone of the cron expression (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The job each slot enqueues (give this or `workflow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobTemplateRequest>,
    /// The workflow template each slot starts, instead of `job`: the slot enqueues a job of
    /// kind `errand.start_workflow` in queue `errand.workflows`, which errand itself runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<crate::ScheduledWorkflow>,
    /// When the previous run has not ended: `allow`, `skip` (default), `buffer_one`, `replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapPolicy>,
    /// Slots missed while down or paused: `skip`, `once` (default), `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUpPolicy>,
    /// With `catch_up: all`, how far back (default `24h`, at most 167 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PositiveDuration>)]
    pub catch_up_window: Option<FlexDuration>,
    /// Random delay up to this for each job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<FlexDuration>,
    /// Its jobs carry the lock key `schedule:<name>`: never two running at once, anywhere.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub singleton: bool,
}

/// `PUT /v1/schedules/{name}`: a schedule's definition; the path names it, so `name` may be
/// left out (given, it must be the path's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePutRequest {
    /// Optional: the path's name. A different name is refused (`400`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ScheduleName>)]
    pub name: Option<String>,
    /// Cron expression: 5 fields, 6 with seconds first, or `@hourly`, `@daily`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Interval instead of cron (`"30s"` or milliseconds), at least 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Interval>)]
    pub every: Option<FlexDuration>,
    /// IANA time zone of the cron expression (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The job each slot enqueues (give this or `workflow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobTemplateRequest>,
    /// The workflow template each slot starts, instead of `job`: the slot enqueues a job of
    /// kind `errand.start_workflow` in queue `errand.workflows`, which errand itself runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<crate::ScheduledWorkflow>,
    /// When the previous run has not ended: `allow`, `skip` (default), `buffer_one`, `replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapPolicy>,
    /// Slots missed while down or paused: `skip`, `once` (default), `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUpPolicy>,
    /// With `catch_up: all`, how far back (default `24h`, at most 167 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PositiveDuration>)]
    pub catch_up_window: Option<FlexDuration>,
    /// Random delay up to this for each job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<FlexDuration>,
    /// Its jobs carry the lock key `schedule:<name>`: never two running at once, anywhere.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub singleton: bool,
}

impl SchedulePutRequest {
    /// The full request for the schedule the path names.
    ///
    /// # Errors
    /// `name` in the body differs from the path's.
    pub fn for_path(self, path_name: &str) -> Result<ScheduleRequest, ValidationError> {
        if let Some(name) = &self.name {
            if name != path_name {
                return Err(ValidationError::new(
                    "name",
                    format!(
                        "the body names `{name}` but the path `{path_name}`: leave `name` out of the body (the path names the schedule) or make them match"
                    ),
                ));
            }
        }
        Ok(ScheduleRequest {
            name: path_name.to_string(),
            cron: self.cron,
            every: self.every,
            timezone: self.timezone,
            job: self.job,
            workflow: self.workflow,
            overlap: self.overlap,
            catch_up: self.catch_up,
            catch_up_window: self.catch_up_window,
            jitter: self.jitter,
            singleton: self.singleton,
        })
    }
}

/// Whole milliseconds, saturating: a duration past `u64::MAX` ms stays too long for every
/// limit (`as u64` wrapped it, so `2^64 + 384 ms` of jitter passed as 384 ms).
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Default catch-up window: a day of missed slots is worth running; older ones rarely are.
const DEFAULT_CATCH_UP_WINDOW_MS: u64 = 24 * 3600 * 1000;

impl ScheduleRequest {
    /// Checks every field and builds the definition to store.
    ///
    /// # Errors
    /// The first field that breaks a rule.
    pub fn into_spec(self, limits: &EnqueueLimits) -> Result<ScheduleSpec, ValidationError> {
        let name = ScheduleName::parse(&self.name)?;
        let job = match (self.job, self.workflow) {
            (Some(job), None) => job.into_template(limits).map_err(|e| e.within("job"))?.0,
            (None, Some(wf)) => wf.into_template(limits).map_err(|e| e.within("workflow"))?,
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "workflow",
                    "give job or workflow, not both",
                ))
            }
            (None, None) => return Err(ValidationError::new("job", "give job or workflow")),
        };
        let window = self
            .catch_up_window
            .map(|w| millis(w.0))
            .unwrap_or(DEFAULT_CATCH_UP_WINDOW_MS);
        if window == 0 {
            return Err(ValidationError::new(
                "catch_up_window",
                "must be longer than zero",
            ));
        }
        if window > errand_core::limits::MAX_SLOT_REACH_MS {
            return Err(ValidationError::new(
                "catch_up_window",
                format!(
                    "at most {} hours: errand remembers which slots ran for a week",
                    errand_core::limits::MAX_SLOT_REACH_MS / 3_600_000
                ),
            ));
        }
        let spec = ScheduleSpec {
            name,
            cron: self.cron,
            every_ms: self.every.map(|e| millis(e.0)),
            timezone: self.timezone.unwrap_or_else(|| "UTC".into()),
            job,
            overlap: self.overlap.unwrap_or_default(),
            catch_up: self.catch_up.unwrap_or_default(),
            catch_up_window_ms: window,
            jitter_ms: self.jitter.map(|j| millis(j.0)).unwrap_or(0),
            singleton: self.singleton,
        };
        spec.validate(jiff::Timestamp::now())?;
        Ok(spec)
    }
}

/// Every schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleList {
    /// By name.
    pub schedules: Vec<Schedule>,
}

/// `GET /v1/schedules/{name}/next` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NextQuery {
    /// How many fire times, 1 to 1000 (default 10).
    #[param(minimum = 1, maximum = 1000)]
    pub count: Option<usize>,
}

/// Upcoming fire times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NextFireTimes {
    /// Oldest first.
    #[schema(value_type = Vec<String>)]
    pub next: Vec<jiff::Timestamp>,
}

/// `POST /v1/schedules/{name}/backfill`: run the slots of a past range that have no job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// Start of the range (exclusive).
    #[schema(value_type = String, format = DateTime)]
    pub from: jiff::Timestamp,
    /// End of the range (inclusive).
    #[schema(value_type = String, format = DateTime)]
    pub to: jiff::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(catch_up_window: Option<&str>, jitter: Option<&str>) -> ScheduleRequest {
        let flex = |t: &str| FlexDuration(errand_core::duration::parse("d", t).unwrap());
        ScheduleRequest {
            name: "s".into(),
            cron: Some("0 3 * * *".into()),
            job: Some(JobTemplateRequest {
                kind: "k".into(),
                ..JobTemplateRequest::default()
            }),
            catch_up_window: catch_up_window.map(flex),
            jitter: jitter.map(flex),
            ..ScheduleRequest::default()
        }
    }

    #[test]
    fn a_window_or_jitter_past_u64_milliseconds_is_refused_not_wrapped() {
        // Found while writing the schedule fuzz target's properties: 18446744073709552 s is
        // 2^64 + 384 ms, which `as u64` wrapped to 384 ms and accepted.
        let limits = EnqueueLimits {
            max_payload_bytes: 1024,
        };
        let huge = "18446744073709552s";
        let err = request(Some(huge), None).into_spec(&limits).unwrap_err();
        assert_eq!(err.field, "catch_up_window");
        let err = request(None, Some(huge)).into_spec(&limits).unwrap_err();
        assert_eq!(err.field, "jitter");
        let ok = request(Some("6h"), Some("1m")).into_spec(&limits).unwrap();
        assert_eq!((ok.catch_up_window_ms, ok.jitter_ms), (21_600_000, 60_000));
    }
}
