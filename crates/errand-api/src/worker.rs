//! The remote worker protocol: claim, heartbeat, complete, fail, settle.

use errand_core::session::SessionState;
use errand_core::{Job, JobId, JobKind, JobState, LeaseToken, Progress, QueueName, RunReport};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::{StorableJson, WorkerName};

/// `POST /v1/queues/{queue}/claim`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Who claims; shown on jobs and attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WorkerName>)]
    pub worker: Option<String>,
    /// At most this many jobs, 1 to 1000 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max: Option<u32>,
    /// Long-poll this many milliseconds when no job is ready (at most 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 60000)]
    pub wait_ms: Option<u64>,
    /// Lease length in milliseconds (100 to 86400000, default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 100, maximum = 86400000)]
    pub lease_ms: Option<u64>,
    /// Only these kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<JobKind>)]
    pub kinds: Vec<String>,
    /// Jobs this worker finished, completed before the claim in the same transaction (as
    /// `POST /v1/jobs/settle` would), so a worker's cycle is one round trip. With
    /// `failures`, at most 10,000 settlements in all; each is answered in `settled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 10000)]
    pub completions: Vec<SettleCompletion>,
    /// Jobs this worker failed, settled with `completions` before the claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 10000)]
    pub failures: Vec<SettleFailure>,
}

/// A claimed job as a worker needs it.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimedJobView {
    /// Its id.
    pub id: JobId,
    /// Which handler runs it.
    pub kind: JobKind,
    /// Its queue.
    pub queue: QueueName,
    /// The input.
    pub payload: Value,
    /// This attempt, 1 for the first.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Longest this attempt may run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The last checkpoint: resume from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Value>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The schedule that fired it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule slot it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub slot: Option<jiff::Timestamp>,
    /// Send with heartbeat, complete and fail.
    pub lease_token: LeaseToken,
    /// When the lease ends unless renewed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_expires_at: Option<jiff::Timestamp>,
    /// For a job with a `session_key`: the session's state and version, read with the
    /// claim. Complete with `session_state` to write the next version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionState>,
    /// What its flow hands it: a workflow step's `{"workflow", "input", "parents"}`, a
    /// compensation's `{"workflow", "input", "compensates", "result"}`, a continuation's
    /// `{"parents"}`, a batch's `on_complete` job's `{"batch"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// The workflow it is a step (or compensation) of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<errand_core::WorkflowId>,
    /// The step's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The batch it counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<errand_core::BatchId>,
    /// The job's secrets with their real values: the only answer that carries them, and
    /// only to the worker holding the lease. Keep them out of logs and results.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

/// Prints the job as its JSON with the secrets' values as `***`: a worker that logs what it
/// claimed with `{:?}` shows no secret.
impl std::fmt::Debug for ClaimedJobView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::enqueue::debug_without_secrets(f, "ClaimedJobView", self, |j| &mut j.secrets)
    }
}

impl ClaimedJobView {
    /// The worker's view of a claimed job.
    pub fn new(job: Job, lease_token: LeaseToken) -> Self {
        Self {
            id: job.id,
            kind: job.kind,
            queue: job.queue,
            payload: job.payload,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            timeout_ms: job.timeout_ms,
            checkpoint: job.checkpoint,
            tags: job.tags,
            schedule: job.schedule,
            slot: job.slot,
            lease_token,
            lease_expires_at: job.lease_expires_at,
            session: None,
            context: job.flow.context,
            workflow_id: job.flow.workflow_id,
            step: job.flow.step,
            batch_id: job.flow.batch_id,
            secrets: job.secrets.reveal().clone(),
        }
    }

    /// The view with the session state its claim read.
    pub fn with_session(mut self, session: Option<SessionState>) -> Self {
        self.session = session;
        self
    }
}

/// The claimed jobs; empty when none was ready within the wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimResponse {
    /// In claim order.
    pub jobs: Vec<ClaimedJobView>,
    /// How each settlement sent with the claim went: completions first, then failures,
    /// each in request order (absent when none was sent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settled: Vec<SettleResult>,
}

/// `POST /v1/jobs/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The lease's token.
    pub lease_token: LeaseToken,
    /// New lease length from now in milliseconds (100 to 86400000); the claim's length when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 100, maximum = 86400000)]
    pub lease_ms: Option<u64>,
    /// Progress to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// State to resume from on a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub checkpoint: Option<Value>,
}

/// `POST /v1/jobs/{id}/release`: a worker that is stopping gives back a job it has not
/// run to the end, as if it had never claimed it (the attempt is not counted), so that a
/// worker restarted often does not push its jobs toward `dead`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The lease's token.
    pub lease_token: LeaseToken,
}

/// The renewed lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeartbeatResponse {
    /// When the lease now ends.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_expires_at: Option<jiff::Timestamp>,
    /// The job's state (`running`).
    pub state: JobState,
}

/// `POST /v1/jobs/{id}/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The lease's token.
    pub lease_token: LeaseToken,
    /// What the handler returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub result: Option<Value>,
    /// How the hosted process ended and what it cost (exit code or signal, duration, CPU
    /// time, peak memory), kept on the attempt. Sent by workers that run scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RunReport>,
    /// A session job's new session state (any JSON, at most 256 KiB), written as the next
    /// version in the completion's transaction. Refused for a job without a `session_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub session_state: Option<Value>,
}

/// `POST /v1/jobs/{id}/fail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// The lease's token.
    pub lease_token: LeaseToken,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub error: Option<String>,
    /// Retry after this many milliseconds instead of the backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub retry_in_ms: Option<u64>,
    /// Do not retry: the job is dead now.
    #[serde(default)]
    pub dead: bool,
    /// How the hosted process ended and what it cost (exit code or signal, duration, CPU
    /// time, peak memory), kept on the attempt. Sent by workers that run scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RunReport>,
}

/// One completion in a settle call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleCompletion {
    /// The job.
    pub id: JobId,
    /// The lease's token.
    pub lease_token: LeaseToken,
    /// What the handler returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub result: Option<Value>,
    /// How the hosted process ended and what it cost (exit code or signal, duration, CPU
    /// time, peak memory), kept on the attempt. Sent by workers that run scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RunReport>,
    /// A session job's new session state (any JSON, at most 256 KiB), written as the next
    /// version in the completion's transaction. Refused for a job without a `session_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub session_state: Option<Value>,
}

/// One failure in a settle call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleFailure {
    /// The job.
    pub id: JobId,
    /// The lease's token.
    pub lease_token: LeaseToken,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub error: Option<String>,
    /// Retry after this many milliseconds instead of the backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub retry_in_ms: Option<u64>,
    /// Do not retry.
    #[serde(default)]
    pub dead: bool,
    /// How the hosted process ended and what it cost (exit code or signal, duration, CPU
    /// time, peak memory), kept on the attempt. Sent by workers that run scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RunReport>,
}

/// `POST /v1/jobs/settle`: many completions and failures in one call (1 to 10,000 in all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// Jobs that succeeded.
    #[serde(default)]
    pub completions: Vec<SettleCompletion>,
    /// Jobs that failed.
    #[serde(default)]
    pub failures: Vec<SettleFailure>,
}

/// How one settlement went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettleResult {
    /// The job.
    pub id: JobId,
    /// Its new state, when the settlement took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Why it did not (e.g. `lease_lost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorDetail>,
}

/// Completions first, then failures, each in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettleResponse {
    /// One per settlement.
    pub results: Vec<SettleResult>,
}

impl SettleRequest {
    /// Completes every job of a claim without a result: what a batch worker sends when the
    /// whole claim went well.
    pub fn complete_all(jobs: &[ClaimedJobView]) -> Self {
        Self {
            completions: jobs
                .iter()
                .map(|j| SettleCompletion {
                    id: j.id,
                    lease_token: j.lease_token,
                    result: None,
                    report: None,
                    session_state: None,
                })
                .collect(),
            failures: vec![],
        }
    }
}
