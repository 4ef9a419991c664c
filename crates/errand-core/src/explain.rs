//! "Why isn't it running?": the facts a store gathers about a job that has not started,
//! and the reasons, in words and as structured codes, read from them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::queue::QueueSettings;
use crate::session::Session;
use crate::throttle::{Limit, TokenBucket};
use crate::worker::WorkerInfo;
use crate::{Job, JobId, Millis};

/// A worker that has not claimed for this long no longer counts as asking for a queue.
pub const WORKER_SILENT_AFTER_MS: i64 = 60_000;

/// Jobs under a limit, as many as a reason names (a sample when there are many).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    /// How many.
    pub count: u64,
    /// Up to ten of them.
    pub sample: Vec<JobId>,
}

/// What a store knows that bears on why a job waits, read in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainFacts {
    /// The job.
    pub job: Job,
    /// The store's clock.
    pub now: Millis,
    /// Whether its queue is paused.
    pub queue_paused: bool,
    /// Its queue's settings.
    pub queue_settings: QueueSettings,
    /// Its queue's running jobs.
    pub queue_running: Holders,
    /// Its queue's rate bucket, when the queue has a rate and was drawn from.
    pub queue_bucket: Option<TokenBucket>,
    /// The limit of its kind, with what runs under it and its bucket.
    pub kind_limit: Option<(Limit, Holders, Option<TokenBucket>)>,
    /// The limit of its rate key, with its bucket.
    pub key_limit: Option<(Limit, Option<TokenBucket>)>,
    /// Its gate (lock, concurrency key or session), when it has one.
    pub gate: Option<GateFacts>,
    /// Workers seen asking for its queue, latest first.
    pub workers: Vec<WorkerInfo>,
}

/// A gate as an explanation needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct GateFacts {
    /// `lock:K`, `key:K` or `session:K`.
    pub name: String,
    /// Places.
    pub capacity: u32,
    /// The jobs holding its places (admitted: running, ready or, for a session, waiting
    /// for a retry).
    pub holders: Holders,
    /// The session, for a session gate.
    pub session: Option<Session>,
}

/// Why a job waits, as a code clients can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// It is not waiting: it runs or has finished.
    NotWaiting,
    /// Its queue is paused.
    QueuePaused,
    /// Its `run_at` has not come.
    RunAtFuture,
    /// Another job holds its lock key.
    LockHeld,
    /// Its concurrency key's places are taken.
    ConcurrencyKeyFull,
    /// Another job of its session goes first.
    SessionHead,
    /// Its session waits behind a dead job.
    SessionBlocked,
    /// Its queue's concurrency limit is reached.
    QueueConcurrencyFull,
    /// Its kind's concurrency limit is reached.
    KindConcurrencyFull,
    /// A rate limit has no token until `until`.
    RateLimited,
    /// No worker has asked for its queue (or kind) lately.
    NoWorker,
    /// Nothing holds it back: the next claim for its queue takes it.
    Ready,
}

/// One reason a job waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// What kind of reason.
    pub code: ReasonCode,
    /// The reason in words.
    pub message: String,
    /// When it will have passed, if known (a `run_at`, the next rate token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
    /// The key or limit concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The jobs holding it back (a sample of up to ten).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub jobs: Vec<JobId>,
}

/// The answer of `GET /v1/jobs/{id}/explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Explanation {
    /// The job.
    #[schema(value_type = String)]
    pub job: JobId,
    /// Its state.
    pub state: crate::JobState,
    /// The reasons in one sentence.
    pub summary: String,
    /// Every reason that holds now, most decisive first.
    pub reasons: Vec<Reason>,
}

/// Reads the reasons from the facts: every one that holds now, most decisive first
/// (paused, run_at, gate, queue/kind concurrency, rate, workers), or `Ready` when none
/// does, or `NotWaiting` when the job is running or finished.
pub fn explain(facts: &ExplainFacts) -> Explanation {
    // Filled in by the engine work of issue 11.
    Explanation {
        job: facts.job.id,
        state: facts.job.state,
        summary: String::new(),
        reasons: Vec::new(),
    }
}
