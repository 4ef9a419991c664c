//! Parameter and result structs of the [`Store`](crate::Store) methods.

use std::time::Duration;

use errand_core::schedule_spec::ScheduleSpec;
use errand_core::{
    Job, JobId, JobKind, JobState, LeaseToken, Millis, NewJob, NewLogLine, Progress, QueueName,
    RetryPolicy, RunReport, ScheduleName,
};
use serde_json::Value;

use crate::StoreError;

/// Input of [`Store::job_insert_many`](crate::Store::job_insert_many).
#[derive(Debug, Clone)]
pub struct JobInsertManyParams {
    /// The jobs, all inserted or none.
    pub jobs: Vec<NewJob>,
    /// How long an idempotency key keeps deduplicating.
    pub idempotency_window: Duration,
}

/// One answer of [`Store::job_insert_many`](crate::Store::job_insert_many), in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertedJob {
    /// The stored job: the new one, or the earlier one an idempotency key pointed to.
    pub job: Job,
    /// False when an earlier job with the same idempotency key was returned instead.
    pub inserted: bool,
}

/// Input of [`Store::job_list`](crate::Store::job_list). Newest first.
#[derive(Debug, Clone, Default)]
pub struct JobListParams {
    /// Only this queue.
    pub queue: Option<QueueName>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Only jobs carrying this tag.
    pub tag: Option<String>,
    /// Cursor: only jobs older than this one.
    pub before: Option<JobId>,
    /// Page size.
    pub limit: u32,
}

/// Input of [`Store::job_claim`](crate::Store::job_claim).
#[derive(Debug, Clone)]
pub struct JobClaimParams {
    /// The queue to take from.
    pub queue: QueueName,
    /// Who claims; shown on the job and its attempt.
    pub worker: String,
    /// At most this many jobs.
    pub max: u32,
    /// How long the lease lasts before the job returns to the queue.
    pub lease: Duration,
    /// Only these kinds; empty means any.
    pub kinds: Vec<JobKind>,
}

/// One caller's share of a claim made together with others'
/// ([`JobClaimTogetherParams`]): its jobs are leased under its own worker name and its own
/// lease token, as if it had claimed alone.
#[derive(Debug, Clone)]
pub struct ClaimTaker {
    /// Who claims; shown on the job and its attempt.
    pub worker: String,
    /// At most this many jobs.
    pub max: u32,
}

/// Input of [`Store::job_settle_and_claim_together`](crate::Store::job_settle_and_claim_together):
/// claims of one queue, lease and kinds by several takers at once (workers' cycles that
/// arrived together, combined by the engine), made by one statement where the store can.
#[derive(Debug, Clone)]
pub struct JobClaimTogetherParams {
    /// The queue to take from.
    pub queue: QueueName,
    /// How long each lease lasts before the job returns to the queue.
    pub lease: Duration,
    /// Only these kinds; empty means any.
    pub kinds: Vec<JobKind>,
    /// The takers, served in this order: when fewer jobs are ready than all of them ask
    /// for, the first get theirs.
    pub takers: Vec<ClaimTaker>,
}

impl JobClaimTogetherParams {
    /// How many jobs all takers ask for together.
    pub fn total(&self) -> u32 {
        self.takers
            .iter()
            .fold(0u32, |n, t| n.saturating_add(t.max))
    }

    /// The claim one taker would have made alone.
    pub fn alone(&self, taker: &ClaimTaker) -> JobClaimParams {
        JobClaimParams {
            queue: self.queue.clone(),
            worker: taker.worker.clone(),
            max: taker.max,
            lease: self.lease,
            kinds: self.kinds.clone(),
        }
    }
}

impl From<JobClaimParams> for JobClaimTogetherParams {
    fn from(p: JobClaimParams) -> Self {
        JobClaimTogetherParams {
            queue: p.queue,
            lease: p.lease,
            kinds: p.kinds,
            takers: vec![ClaimTaker {
                worker: p.worker,
                max: p.max,
            }],
        }
    }
}

/// What [`Store::job_settle_and_claim_together`](crate::Store::job_settle_and_claim_together)
/// did: each settlement's outcome in input order, and each taker's jobs in taker order.
#[derive(Debug)]
pub struct SettledAndClaimedTogether {
    /// As [`Store::job_settle_many`](crate::Store::job_settle_many) answers them.
    pub settled: Vec<Result<Settled, StoreError>>,
    /// One list per taker, as [`Store::job_claim`](crate::Store::job_claim) answers it.
    pub claimed: Vec<Vec<ClaimedJob>>,
}

/// What [`Store::job_insert_and_claim`](crate::Store::job_insert_and_claim) did: the jobs
/// as [`Store::job_insert_many`](crate::Store::job_insert_many) answers them (in the state
/// they were inserted in), and each taker's jobs in taker order.
#[derive(Debug)]
pub struct InsertedAndClaimed {
    /// One answer per job, in input order.
    pub inserted: Vec<InsertedJob>,
    /// One list per taker, as [`Store::job_claim`](crate::Store::job_claim) answers it.
    pub claimed: Vec<Vec<ClaimedJob>>,
}

/// A claimed job and the fencing token of its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The job, now `running`.
    pub job: Job,
    /// Needed to heartbeat, complete or fail it.
    pub lease_token: LeaseToken,
    /// The session's state, for a job with a `session_key`, read in the claim's
    /// transaction.
    pub session: Option<errand_core::session::SessionState>,
}

/// A schedule lead in milliseconds, at most a day: what the due queries add to the store's
/// clock, which an unbounded setting would overflow.
pub fn lead_millis(ahead: Duration) -> Millis {
    const DAY_MS: u128 = 86_400_000;
    i64::try_from(ahead.as_millis().min(DAY_MS)).unwrap_or(0)
}

/// Timed maintenance work whose next time [`Store::due_in`](crate::Store::due_in) tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueWork {
    /// The soonest `run_at` of a `scheduled` job (a delay or a retry's backoff ends).
    Promote,
    /// The soonest end of a running job's lease or of its timeout.
    Rescue,
    /// The soonest next slot of a schedule that is not paused, `ahead` of the slot for a
    /// schedule that fires ahead.
    Fire {
        /// How long before its slot such a schedule's job is written.
        ahead: std::time::Duration,
    },
    /// The soonest deadline of a workflow step that has not ended (what the workflow
    /// supervisor acts on).
    Deadline,
}

/// What [`Store::job_settle_and_claim`](crate::Store::job_settle_and_claim) did: each
/// settlement's outcome in input order, and the jobs claimed after them.
#[derive(Debug)]
pub struct SettledAndClaimed {
    /// As [`Store::job_settle_many`](crate::Store::job_settle_many) answers them.
    pub settled: Vec<Result<Settled, StoreError>>,
    /// As [`Store::job_claim`](crate::Store::job_claim) answers them.
    pub claimed: Vec<ClaimedJob>,
}

/// Input of [`Store::job_release_many`](crate::Store::job_release_many): claims to undo
/// because nobody is left to hear of them.
#[derive(Debug, Clone, Default)]
pub struct JobReleaseManyParams {
    /// Each job with the token it was claimed under; a job that token no longer holds is
    /// left alone.
    pub leases: Vec<(JobId, LeaseToken)>,
}

/// Input of [`Store::job_heartbeat`](crate::Store::job_heartbeat).
#[derive(Debug, Clone)]
pub struct JobHeartbeatParams {
    /// The job.
    pub id: JobId,
    /// The current lease's token.
    pub lease_token: LeaseToken,
    /// New lease length from now; `None` keeps the length the claim asked for.
    pub lease: Option<Duration>,
    /// Progress to record.
    pub progress: Option<Progress>,
    /// Checkpoint to save durably; a retry starts from it.
    pub checkpoint: Option<Value>,
}

/// One way a worker ends an attempt.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// The attempt succeeded.
    Complete {
        /// The job.
        id: JobId,
        /// The current lease's token.
        lease_token: LeaseToken,
        /// What the handler returned.
        result: Option<Value>,
        /// How the hosted process ended and what it used, kept on the attempt.
        report: Option<RunReport>,
        /// The session's new state, written (version + 1) in the same transaction; only
        /// for a job with a `session_key` (`Invalid` otherwise).
        session_state: Option<Value>,
    },
    /// The attempt failed.
    Fail {
        /// The job.
        id: JobId,
        /// The current lease's token.
        lease_token: LeaseToken,
        /// Why.
        error: String,
        /// Wait this long before the next attempt instead of the backoff.
        retry_in: Option<Duration>,
        /// Do not retry: the job is dead now.
        dead: bool,
        /// How the hosted process ended and what it used, kept on the attempt.
        report: Option<RunReport>,
    },
}

impl Settlement {
    /// The job this settles.
    pub fn id(&self) -> JobId {
        match self {
            Settlement::Complete { id, .. } | Settlement::Fail { id, .. } => *id,
        }
    }
}

/// Input of [`Store::job_settle_many`](crate::Store::job_settle_many).
#[derive(Debug, Clone)]
pub struct JobSettleManyParams {
    /// Each settles one job; each is fenced on its own.
    pub settlements: Vec<Settlement>,
    /// Backoff for failures that name no `retry_in`.
    pub retry_policy: RetryPolicy,
}

/// How far the store's schema is migrated, beside how far this build's migrations go
/// ([`Store::schema_version`](crate::Store::schema_version)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Migrations applied to the store (by this node at its start, or by another node).
    pub applied: u32,
    /// Migrations this build knows: what its queries are written for.
    pub expected: u32,
}

/// One settlement's answer from [`Store::job_settle_many`](crate::Store::job_settle_many).
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The job as this settlement left it; for a repeat, the job as it is now.
    pub job: Job,
    /// The settlement repeated one its token already made (its first answer was lost), so
    /// this call changed nothing. Whoever counts settlements (metrics, events) must skip it,
    /// or one attempt is counted twice.
    pub repeat: bool,
}

/// Input of [`Store::job_rescue_expired`](crate::Store::job_rescue_expired).
#[derive(Debug, Clone)]
pub struct JobRescueParams {
    /// At most this many jobs per call, to keep transactions short.
    pub limit: u32,
    /// Backoff for attempts that outlived their timeout.
    pub retry_policy: RetryPolicy,
}

/// Input of [`Store::queue_upsert`](crate::Store::queue_upsert): a queue's settings, as
/// exported or declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUpsertParams {
    /// The queue, created when missing.
    pub name: QueueName,
    /// Whether it hands out jobs.
    pub paused: bool,
}

/// Which dead jobs a bulk operation touches. Every dead job is its own variant, never what
/// an empty filter means, so a forgotten filter cannot empty the dead-letter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadSelection {
    /// Every dead job of every queue.
    All,
    /// Every dead job of one queue.
    Queue(QueueName),
    /// These jobs, where they are dead (and in `queue`, when given); an empty list selects
    /// nothing.
    Ids {
        /// The jobs.
        ids: Vec<JobId>,
        /// Only those of this queue.
        queue: Option<QueueName>,
    },
}

/// Input of [`Store::node_heartbeat`](crate::Store::node_heartbeat): registers the node on
/// its first call.
#[derive(Debug, Clone)]
pub struct NodeHeartbeatParams {
    /// The node.
    pub id: errand_core::NodeId,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// errand version.
    pub version: String,
}

/// Input of [`Store::job_prune`](crate::Store::job_prune).
#[derive(Debug, Clone)]
pub struct JobPruneParams {
    /// Only jobs in these (final) states.
    pub states: Vec<JobState>,
    /// Only jobs that finished longer ago than this.
    pub older_than: Duration,
    /// At most this many per call: deleting in small batches keeps locks short.
    pub limit: u32,
}

/// A job with its history, as `errand export` writes it and `errand import` reads it. Its
/// `{:?}` shows the secrets' names only.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RestoredJob {
    /// The job as it was.
    pub job: Job,
    /// Its attempts, first first.
    #[serde(default)]
    pub attempts: Vec<errand_core::Attempt>,
    /// Its secrets' real values, present only in an export made with
    /// `--include-secrets` (the job's own `secrets` shows `"***"`). Restored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<std::collections::BTreeMap<String, String>>,
}

impl std::fmt::Debug for RestoredJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Option<Vec<&String>> = self.secrets.as_ref().map(|s| s.keys().collect());
        f.debug_struct("RestoredJob")
            .field("job", &self.job)
            .field("attempts", &self.attempts.len())
            .field("secrets", &names)
            .finish_non_exhaustive()
    }
}

impl RestoredJob {
    /// The secrets to restore: those of [`RestoredJob::secrets`], never the job's redacted
    /// ones.
    pub fn stored_secrets(&self) -> Option<serde_json::Value> {
        self.secrets
            .clone()
            .map(errand_core::Secrets::from_stored)
            .and_then(|s| s.to_stored())
    }
}

/// Whether [`Store::schedule_put`](crate::Store::schedule_put) may overwrite an existing
/// schedule of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulePut {
    /// Create only: `AlreadyExists` when the name is taken (`POST /v1/schedules`).
    Create,
    /// Create, or replace the definition of the schedule of that name, keeping its history
    /// (`PUT /v1/schedules/{name}`, `errand.toml`, import).
    Replace,
}

/// Input of [`Store::schedule_put`](crate::Store::schedule_put).
#[derive(Debug, Clone)]
pub struct SchedulePutParams {
    /// The definition.
    pub spec: ScheduleSpec,
    /// Its first slot, computed by the caller on the store's clock.
    pub next_fire_at: Option<Millis>,
    /// Create only, or create or replace.
    pub mode: SchedulePut,
}

/// Input of [`Store::schedule_fire_many`](crate::Store::schedule_fire_many): one scheduler
/// decision about one schedule, applied atomically with the others of its call.
#[derive(Debug, Clone)]
pub struct ScheduleFireParams {
    /// The schedule.
    pub name: ScheduleName,
    /// The `next_fire_at` the caller read. With `expected_last_job_id`, the compare-and-set:
    /// if either changed since, nothing is done for this schedule and the outcome is
    /// [`ScheduleFireOutcome::Moved`].
    pub expected_next_fire_at: Option<Millis>,
    /// The `last_job_id` the caller read; a manual run or another node's fire changes it.
    pub expected_last_job_id: Option<JobId>,
    /// The `updated_at` the caller read, which every change of the schedule moves (a fire,
    /// a new definition, a pause or resume): a decision made on a definition replaced since
    /// is `Moved`, even where the new one happens to have the same next slot. `None` checks
    /// nothing here (callers that did not read the schedule).
    pub expected_updated_at: Option<Millis>,
    /// Jobs to enqueue. A job carrying a slot claims it first and is skipped when the slot
    /// already has a job (the store keeps one job per slot, whatever the schedulers do); a
    /// job without a slot (a manual run) is always inserted.
    pub jobs: Vec<NewJob>,
    /// The schedule's next slot after this decision.
    pub next_fire_at: Option<Millis>,
    /// The slot `buffer_one` holds back after this decision (`None`: none).
    pub buffered_slot: Option<Millis>,
    /// A job to cancel in the same transaction (overlap `replace`), only when the
    /// compare-and-set holds; already finished or gone, it is left alone.
    pub cancel: Option<JobId>,
    /// Window of idempotency keys (templates carry none, but the insert path needs one).
    pub idempotency_window: Duration,
}

/// What [`Store::schedule_fire_many`](crate::Store::schedule_fire_many) did with one
/// schedule. Losing the compare-and-set is an ordinary outcome of leaderless firing, not an
/// error, so callers can tell it from real failures without reading error strings.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleFireOutcome {
    /// Applied: the jobs enqueued (slots that already had a job left out) and the job
    /// cancelled, if any.
    Fired {
        /// Jobs enqueued, in input order.
        jobs: Vec<Job>,
        /// The job `replace` cancelled.
        cancelled: Option<Box<Job>>,
    },
    /// The schedule changed (another node fired, a manual run, a redefinition) or was
    /// deleted since it was read: nothing was done.
    Moved,
}

/// One row of the slot ledger: which job a schedule's slot got. Kept so a slot never runs
/// twice (backfill, racing schedulers); exported and imported with the jobs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScheduleSlotRecord {
    /// The schedule.
    pub schedule: ScheduleName,
    /// The slot's instant, milliseconds since the epoch.
    pub slot: Millis,
    /// The job it got.
    pub job_id: JobId,
}

/// Input of [`Store::schedule_slot_list`](crate::Store::schedule_slot_list): a page of one
/// schedule's slot ledger, oldest first.
#[derive(Debug, Clone)]
pub struct ScheduleSlotListParams {
    /// The schedule.
    pub schedule: ScheduleName,
    /// Cursor: only slots after this one.
    pub after: Option<Millis>,
    /// Page size.
    pub limit: u32,
}

/// Input of [`Store::schedule_slot_prune`](crate::Store::schedule_slot_prune).
#[derive(Debug, Clone)]
pub struct ScheduleSlotPruneParams {
    /// Delete ledger rows of slots older than this, on the store's clock.
    pub older_than: Duration,
    /// At most this many per call: small deletes keep locks short.
    pub limit: u32,
}

/// Input of [`Store::job_log_append`](crate::Store::job_log_append): a batch of lines one
/// run printed.
#[derive(Debug, Clone)]
pub struct JobLogAppendParams {
    /// Whose lines: a job's id, or a continuous instance's id (a uuid that is no job).
    pub owner: uuid::Uuid,
    /// The attempt (for an instance: its restart, from 1) that printed them.
    pub attempt: u32,
    /// With a token, the append is fenced: the job must be running under this lease, else
    /// nothing is written (`LeaseLost`, or `NotFound` for no such job).
    pub lease_token: Option<LeaseToken>,
    /// The lines, in the order they were printed; numbered on from the attempt's last.
    pub lines: Vec<NewLogLine>,
    /// The per-attempt bound keeps this many first lines...
    pub keep_head: u32,
    /// ...and this many last ones (at least one: the last line's number tells how many the
    /// attempt printed); the lines in between are deleted. `u32::MAX` keeps everything.
    pub keep_tail: u32,
}

/// Input of [`Store::job_log_list`](crate::Store::job_log_list): a page of stored lines,
/// ordered by attempt, then line number.
#[derive(Debug, Clone)]
pub struct JobLogListParams {
    /// Whose lines.
    pub owner: uuid::Uuid,
    /// Only this attempt's.
    pub attempt: Option<u32>,
    /// Cursor: only lines after this `(attempt, seq)`.
    pub after: Option<(u32, u64)>,
    /// Page size.
    pub limit: u32,
}

/// Input of [`Store::lease_acquire`](crate::Store::lease_acquire): a named lease that
/// makes one node of a cluster the holder of something (a singleton continuous job).
#[derive(Debug, Clone)]
pub struct LeaseAcquireParams {
    /// What is held.
    pub name: String,
    /// Who asks (a node's id, as text).
    pub holder: String,
    /// How long the lease lasts on the store's clock unless renewed.
    pub ttl: Duration,
}

/// Input of [`Store::job_insert_marked`](crate::Store::job_insert_marked): a job enqueued at
/// most once per mark, ever (a watched file's version).
#[derive(Debug, Clone)]
pub struct JobInsertMarkedParams {
    /// The job to insert when the mark is new.
    pub job: NewJob,
    /// The mark's namespace (a definition's watch trigger).
    pub scope: String,
    /// The mark within the scope (a file's path and version).
    pub key: String,
    /// How long an idempotency key of the job keeps deduplicating.
    pub idempotency_window: Duration,
}

/// A page of the event log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventPage {
    /// Events after the cursor, in commit order.
    pub events: Vec<errand_core::Event>,
    /// Set when events right after the cursor were pruned (it is older than the retention
    /// window): the newest pruned event's id. `events` then starts after the gap.
    pub missed_through: Option<errand_core::EventId>,
}

/// Which events [`Store::event_prune`](crate::Store::event_prune) deletes: those older than
/// `older_than`, and beyond the newest `keep_at_most`, never any after `keep_after`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPruneParams {
    /// Age (store clock) past which events go.
    pub older_than: std::time::Duration,
    /// Only this many of the newest events stay, whatever their age.
    pub keep_at_most: u64,
    /// Events after this id stay whatever their age (a consumer such as the subscription
    /// fan-out has not read them yet).
    pub keep_after: Option<errand_core::EventId>,
    /// At most this many go in one call.
    pub limit: u32,
}

/// Records the deliveries made from a stretch of the event log and moves the fan-out
/// cursor past it, atomically and only if the cursor is still at `from` (one node fans out
/// a stretch once).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryFanoutParams {
    /// Where the cursor must be (`None`: never set).
    pub from: Option<errand_core::EventId>,
    /// Where it moves to.
    pub to: errand_core::EventId,
    /// The deliveries the stretch owes.
    pub deliveries: Vec<errand_core::NewDelivery>,
}

/// Takes due deliveries for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryClaimParams {
    /// At most this many.
    pub max: u32,
    /// Nobody else sends them for this long (store clock); a sender that dies leaves them
    /// due again afterwards.
    pub lease: std::time::Duration,
}

/// What became of one attempt at a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The receiver took it (2xx).
    Delivered,
    /// It failed; try again this long from now (store clock).
    RetryIn(std::time::Duration),
    /// It failed and its time is up: give up.
    GiveUp,
}

/// Ends one attempt at a claimed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettleParams {
    /// The delivery.
    pub id: errand_core::DeliveryId,
    /// The claim's token; a stale one changes nothing (`LeaseLost`).
    pub lease_token: errand_core::LeaseToken,
    /// What the attempt saw (its `attempt` number is the delivery's count after the claim).
    pub attempt: errand_core::DeliveryAttempt,
    /// What to do next.
    pub outcome: DeliveryOutcome,
    /// A subscription whose failed attempts in a row reach this many is paused, with a
    /// reason naming the count and the last error. A success resets the count.
    pub pause_after_failures: u32,
}

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliveryListParams {
    /// Of this job.
    pub job: Option<errand_core::JobId>,
    /// Of this subscription.
    pub subscription: Option<errand_core::SubscriptionId>,
    /// Only deliveries older than this one (paging).
    pub before: Option<errand_core::DeliveryId>,
    /// At most this many.
    pub limit: u32,
}

/// Input of [`Store::session_list`](crate::Store::session_list): sessions by key.
#[derive(Debug, Clone, Default)]
pub struct SessionListParams {
    /// Cursor: only sessions whose key sorts after this one.
    pub after: Option<String>,
    /// Only blocked (`Some(true)`) or unblocked (`Some(false)`) sessions.
    pub blocked: Option<bool>,
    /// Page size.
    pub limit: u32,
}

/// Input of [`Store::session_state_put`](crate::Store::session_state_put).
#[derive(Debug, Clone)]
pub struct SessionStatePutParams {
    /// The session (created when missing and `expected_version` is 0).
    pub key: String,
    /// The new state.
    pub state: Value,
    /// The version the writer read; the write is refused with `VersionConflict` unless
    /// the session is still at it.
    pub expected_version: u64,
}

/// Input of [`Store::workflow_create`](crate::Store::workflow_create).
#[derive(Debug, Clone)]
pub struct WorkflowCreateParams {
    /// The workflow, its steps' jobs built.
    pub workflow: errand_core::workflow::NewWorkflow,
    /// How long its idempotency key keeps deduplicating.
    pub idempotency_window: Duration,
}

/// Input of [`Store::workflow_list`](crate::Store::workflow_list). Newest first.
#[derive(Debug, Clone, Default)]
pub struct WorkflowListParams {
    /// Only this state.
    pub state: Option<errand_core::workflow::WorkflowState>,
    /// Only workflows started from this template.
    pub template: Option<String>,
    /// Cursor: only workflows older than this one.
    pub before: Option<errand_core::WorkflowId>,
    /// Page size.
    pub limit: u32,
}

/// One step the supervisor acted on ([`Store::workflow_supervise`](crate::Store::workflow_supervise)).
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisedStep {
    /// Its workflow.
    pub workflow: errand_core::WorkflowId,
    /// The step.
    pub step: String,
    /// The step's job after the action.
    pub job: Job,
    /// What was done: retried (made available again) or failed (dead).
    pub action: errand_core::flow::DeadlinePolicy,
}

/// Input of [`Store::batch_list`](crate::Store::batch_list). Newest first.
#[derive(Debug, Clone, Default)]
pub struct BatchListParams {
    /// Only this state.
    pub state: Option<errand_core::batch::BatchState>,
    /// Cursor: only batches older than this one.
    pub before: Option<errand_core::BatchId>,
    /// Page size.
    pub limit: u32,
}

/// Answer of [`Store::batch_create`](crate::Store::batch_create) and
/// [`Store::batch_add`](crate::Store::batch_add).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchWrite {
    /// The batch after the write.
    pub batch: errand_core::batch::Batch,
    /// The jobs written, in input order (as [`Store::job_insert_many`](crate::Store::job_insert_many) answers).
    pub jobs: Vec<InsertedJob>,
}

/// Input of [`Store::audit_list`](crate::Store::audit_list). Newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditListParams {
    /// Only this actor (a token's name).
    pub actor: Option<String>,
    /// Only this action (`dead.purge`, ...).
    pub action: Option<String>,
    /// Cursor: only entries older than this id.
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}
