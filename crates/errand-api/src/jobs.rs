//! Job reads: query strings and pages.

use errand_core::{Attempt, Job, JobId, JobKind, JobState, QueueName};

use crate::schema::WaitDuration;
use serde::{Deserialize, Serialize};

/// `GET /v1/jobs` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// Only this queue.
    #[param(value_type = Option<QueueName>)]
    pub queue: Option<String>,
    /// Only this state.
    #[param(value_type = Option<JobState>)]
    pub state: Option<String>,
    /// Only this kind.
    #[param(value_type = Option<JobKind>)]
    pub kind: Option<String>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<JobId>)]
    pub cursor: Option<String>,
}

/// `GET /v1/jobs/{id}` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobWaitQuery {
    /// Long-poll until the job ends or this long passes (`30s`, `1500` milliseconds; at most
    /// 60s).
    #[param(value_type = Option<WaitDuration>)]
    pub wait: Option<String>,
}

/// A page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<JobId>,
}

/// A job's attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptList {
    /// First first.
    pub attempts: Vec<Attempt>,
}
