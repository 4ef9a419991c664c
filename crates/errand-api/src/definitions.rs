//! Job definitions as the API shows them, and the bodies that run, stop and start them.

use errand_core::instance::InstanceRecord;
use errand_core::LogEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A definition's schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DefinitionScheduleView {
    /// The schedule it owns (see `/v1/schedules/{name}`).
    pub name: String,
    /// Cron expression, for a cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Interval in milliseconds, for an interval schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// IANA time zone.
    pub timezone: String,
}

/// A watched directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchView {
    /// The directory.
    pub dir: String,
    /// Which files count.
    pub glob: String,
}

/// A webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HookView {
    /// `POST /v1/hooks/{name}`.
    pub name: String,
    /// Whether requests must be signed.
    pub signed: bool,
}

/// A loaded job definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DefinitionView {
    /// Its folder's name.
    pub name: String,
    /// `triggered` or `continuous`.
    pub mode: String,
    /// Jobs of this kind run it.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// The folder.
    pub dir: String,
    /// `job.toml` or `webjobs`.
    pub format: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Its own schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<DefinitionScheduleView>,
    /// One run (or instance) in the whole cluster at most.
    pub singleton: bool,
    /// Runs at once per node.
    pub concurrency: u32,
    /// Longest attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Attempts of the jobs it creates.
    pub max_attempts: u32,
    /// Grace between SIGTERM and SIGKILL, in milliseconds.
    pub stopping_wait_ms: u64,
    /// Watched directories.
    pub watch: Vec<WatchView>,
    /// Webhooks.
    pub hooks: Vec<HookView>,
    /// Switched off with `POST /v1/definitions/{name}/stop`.
    pub stopped: bool,
    /// Its continuous instances across the cluster (continuous definitions only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceRecord>,
}

/// A folder of the jobs directory that did not load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DefinitionProblemView {
    /// The folder's name.
    pub name: String,
    /// The file at fault.
    pub file: String,
    /// The setting at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// `GET /v1/definitions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DefinitionList {
    /// The jobs directory this node reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_dir: Option<String>,
    /// Definitions that loaded, by name.
    pub definitions: Vec<DefinitionView>,
    /// Folders that did not, with why.
    pub problems: Vec<DefinitionProblemView>,
}

/// `POST /v1/definitions/{name}/run`: an on-demand run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunDefinitionRequest {
    /// The run's input (stdin); default `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Deduplicates the run like an enqueue's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Most log lines in one page (or one chunk of a followed stream).
pub const MAX_LOG_PAGE: u32 = 10_000;

/// Query of a job's log lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this attempt.
    #[serde(default)]
    pub attempt: Option<u32>,
    /// Lines after this cursor (`attempt:seq`, from `next_cursor`).
    #[serde(default)]
    #[param(pattern = "^[0-9]{1,10}:[0-9]{1,20}$")]
    pub cursor: Option<String>,
    /// Page size (with `follow`: lines per chunk), 1 to 10000 (default 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Stream lines as they come (`application/x-ndjson`, one object a line) until the
    /// attempt ends. A job whose attempt has not started within 30 s ends the stream
    /// with `{"end": {..., "started": false}}`: ask again.
    #[serde(default)]
    pub follow: Option<bool>,
}

/// Query of a continuous instance's log lines (pages only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstanceLogQuery {
    /// Only this restart (from 1).
    #[serde(default)]
    pub attempt: Option<u32>,
    /// Lines after this cursor (`attempt:seq`, from `next_cursor`).
    #[serde(default)]
    #[param(pattern = "^[0-9]{1,10}:[0-9]{1,20}$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 10000 (default 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// Lines dropped between two kept lines by the per-attempt bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogGap {
    /// The attempt.
    pub attempt: u32,
    /// The line before the gap.
    pub after_seq: u64,
    /// How many lines were dropped.
    pub dropped: u64,
}

/// A page of log lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogPage {
    /// Oldest first, by attempt then line number.
    pub lines: Vec<LogEntry>,
    /// Lines the bound dropped between lines of this page.
    pub gaps: Vec<LogGap>,
    /// Pass as `cursor` for the next page; absent when this page was not full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
