//! The [`Store`] trait.

use std::sync::Arc;

use async_trait::async_trait;
use std::time::Duration;

use errand_core::schedule_spec::Schedule;
use errand_core::{
    Attempt, InstanceRecord, Job, JobId, LogEntry, Millis, NodeId, NodeInfo, QueueInfo, QueueName,
    RetryPolicy, ScheduleName,
};

use crate::{
    ClaimedJob, DeadSelection, DueWork, InsertedAndClaimed, InsertedJob, JobClaimParams,
    JobClaimTogetherParams, JobHeartbeatParams, JobInsertManyParams, JobInsertMarkedParams,
    JobListParams, JobLogAppendParams, JobLogListParams, JobPruneParams, JobReleaseManyParams,
    JobRescueParams, JobSettleManyParams, LeaseAcquireParams, NodeHeartbeatParams,
    QueueUpsertParams, RestoredJob, ScheduleChange, ScheduleFireOutcome, ScheduleFireParams,
    SchedulePutParams, ScheduleSlotListParams, ScheduleSlotPruneParams, ScheduleSlotRecord,
    SchemaVersion, Settled, SettledAndClaimed, SettledAndClaimedTogether, StoreError,
};

/// A store shared by the engine, the server and maintenance services.
pub type SharedStore = Arc<dyn Store>;

/// Durable storage of jobs and queues. Every write is durable when the method returns `Ok`.
///
/// Every method reports failures as [`StoreError`]; the errors named under a method are the
/// ones its callers should expect besides [`StoreError::Unavailable`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the store is reachable and writable.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The store's schema version and this build's, for readiness: a node started before
    /// another node of a newer build migrated the shared database (or whose database was
    /// restored from an older backup) runs queries written for another schema. One cheap
    /// read.
    async fn schema_version(&self) -> Result<SchemaVersion, StoreError>;

    /// Whether the parts of the store that live inside this process still run, without
    /// touching the database: liveness (`/healthz`) must not fail because a database is slow
    /// or away (that is readiness), but must fail when only a restart can bring writes back,
    /// such as the SQLite writer thread having died. `Unavailable` says what is gone. A
    /// store with nothing of its own running in the process keeps the default.
    fn live(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Lets go of the store's connections at shutdown, each with the goodbye its database
    /// expects, so that a node stopping cleanly reads as a client leaving and not as a
    /// broken connection in the database's log. Waits a bounded time for them; the store
    /// is not used after. A store with no connections of its own keeps the default.
    async fn close(&self) {}

    /// Inserts jobs atomically: all or none. A job whose idempotency key matches a job
    /// inserted within the window is not inserted; the earlier job is returned instead.
    /// Queues named by the jobs come into being.
    async fn job_insert_many(
        &self,
        params: JobInsertManyParams,
    ) -> Result<Vec<InsertedJob>, StoreError>;

    /// One job. Errors: `NotFound`.
    async fn job_get(&self, id: JobId) -> Result<Job, StoreError>;

    /// A page of jobs, newest first.
    async fn job_list(&self, params: JobListParams) -> Result<Vec<Job>, StoreError>;

    /// Leases up to `max` ready jobs of a queue (highest priority, then oldest `run_at`),
    /// counting an attempt for each. A paused queue yields nothing.
    async fn job_claim(&self, params: JobClaimParams) -> Result<Vec<ClaimedJob>, StoreError> {
        let settle = JobSettleManyParams {
            settlements: Vec::new(),
            retry_policy: RetryPolicy::default(),
        };
        let out = self
            .job_settle_and_claim_together(settle, params.into())
            .await?;
        Ok(out.claimed.into_iter().next().unwrap_or_default())
    }

    /// Undoes claims whose caller went away before it heard the answer (a long-poll claim
    /// whose client disconnected): each job its token still holds becomes available again as
    /// if that claim never happened, so the attempt is not counted and its attempt row is
    /// removed. Returns the jobs released.
    async fn job_release_many(&self, params: JobReleaseManyParams) -> Result<Vec<Job>, StoreError>;

    /// Extends a lease and records progress and checkpoint. Errors: `NotFound`, `LeaseLost`.
    async fn job_heartbeat(&self, params: JobHeartbeatParams) -> Result<Job, StoreError>;

    /// Completes and fails many jobs in one transaction. Each settlement is fenced on its own
    /// lease token; the inner results say, in input order, which took effect. A settlement
    /// repeated by the token whose attempt it already ended the same way (complete after
    /// complete, fail after fail: the first answer was lost) answers the job as it is now,
    /// marked [`Settled::repeat`], and changes nothing; any other stale token is `LeaseLost`.
    ///
    /// Only refusals ([`StoreError::is_refusal`]: `LeaseLost`, `NotFound`, ...) are answered
    /// per entry, and the other entries stand. Any other error (the database failing, a
    /// constraint, a corrupt record, a bug) fails the whole call and keeps nothing of the
    /// batch, so the caller hears it and may send the batch again: PostgreSQL cannot go on
    /// in a transaction after an error, and both stores must answer alike.
    async fn job_settle_many(
        &self,
        params: JobSettleManyParams,
    ) -> Result<Vec<Result<Settled, StoreError>>, StoreError>;

    /// A worker's whole cycle in one transaction: settles what it finished, as
    /// [`job_settle_many`](Self::job_settle_many) does, then claims as
    /// [`job_claim`](Self::job_claim) does. The settlements come first, so what they free
    /// (a lock key, a concurrency slot, a session's next job) can go to the same claim. An
    /// error that fails the settlements fails the claim too: nothing of either is kept.
    async fn job_settle_and_claim(
        &self,
        settle: JobSettleManyParams,
        claim: JobClaimParams,
    ) -> Result<SettledAndClaimed, StoreError> {
        let out = self
            .job_settle_and_claim_together(settle, claim.into())
            .await?;
        Ok(SettledAndClaimed {
            settled: out.settled,
            claimed: out.claimed.into_iter().next().unwrap_or_default(),
        })
    }

    /// How many calls of [`job_settle_and_claim_together`](Self::job_settle_and_claim_together)
    /// (claims) or of [`job_insert_many`](Self::job_insert_many) (small plain enqueues) for
    /// one queue the engine makes at once; requests arriving while that many are under way
    /// wait and go together in the next call. A store that pays for each transaction
    /// (statements, round trips and a commit on a database server) gains from combining and
    /// keeps the default, one: the next call gathers everything that arrived during the
    /// last (on PostgreSQL, a 16-in-flight worker: one call at once drained 2,815–2,993
    /// jobs/s, two 2,484–2,602, four 2,223–2,293). A store that already commits concurrent
    /// writes together loses the overlap of those writes to combining, and says
    /// `usize::MAX` (every cycle goes alone, as it comes).
    fn combined_calls_at_once(&self) -> usize {
        1
    }

    /// Several workers' cycles in one transaction: settles all their settlements, as
    /// [`job_settle_many`](Self::job_settle_many) does, then claims for every taker, each
    /// under its own worker name and lease token, as [`job_claim`](Self::job_claim) does
    /// for one (the first takers get the first jobs in claim order). The engine combines the cycles that
    /// arrive together for one queue into one call, so that a commit (and, on PostgreSQL,
    /// each statement) serves many jobs. An error that fails the settlements fails every
    /// claim: nothing is kept. With no settlements, nothing is settled.
    async fn job_settle_and_claim_together(
        &self,
        settle: JobSettleManyParams,
        claims: JobClaimTogetherParams,
    ) -> Result<SettledAndClaimedTogether, StoreError>;

    /// Inserts jobs as [`job_insert_many`](Self::job_insert_many) does, then claims for
    /// every taker as [`job_settle_and_claim_together`](Self::job_settle_and_claim_together)
    /// does, in one transaction whose claim sees the jobs just inserted. The engine hands an
    /// enqueue to the claims parked on its queue this way: one commit instead of two, and
    /// no wake-up and second round trip between them. The claim is the ordinary one (order,
    /// limits, gates and pauses apply; an older ready job goes first); the inserted jobs are
    /// answered in the state they were inserted in. An error fails both: nothing is kept.
    async fn job_insert_and_claim(
        &self,
        insert: JobInsertManyParams,
        claims: JobClaimTogetherParams,
    ) -> Result<InsertedAndClaimed, StoreError>;

    /// Cancels a job that has not finished. Errors: `NotFound`, `WrongState` when it finished.
    async fn job_cancel(&self, id: JobId) -> Result<Job, StoreError>;

    /// Makes a dead, cancelled or retry-waiting job available now, granting one more attempt
    /// when it had none left. Errors: `NotFound`, `WrongState` when it is running, ready or
    /// succeeded.
    async fn job_retry(&self, id: JobId) -> Result<Job, StoreError>;

    /// A job's attempts, first first. Errors: `NotFound`.
    async fn job_attempt_list(&self, id: JobId) -> Result<Vec<Attempt>, StoreError>;

    /// Returns running jobs whose lease expired to the queue (or to `dead` when no attempts
    /// are left), and fails attempts that outlived their timeout. Returns the changed jobs.
    async fn job_rescue_expired(&self, params: JobRescueParams) -> Result<Vec<Job>, StoreError>;

    /// Promotes delayed jobs: moves `scheduled` jobs whose `run_at` has come to `available`;
    /// returns their queues.
    async fn job_promote_due(&self, limit: u32) -> Result<Vec<QueueName>, StoreError>;

    /// How long until `work` next has something to do by the store's clock: zero when it
    /// already has, `None` when nothing waits for a time. Maintenance services sleep until
    /// then instead of polling; each answer is one read (an index's first entry, plus the
    /// running jobs that have a timeout for [`DueWork::Rescue`]).
    async fn due_in(&self, work: DueWork) -> Result<Option<Duration>, StoreError>;

    /// Tidies the store's bookkeeping of queue counts so that [`Store::queue_list`] stays
    /// cheap; returns how many records it folded. The counts are exact whether or not this
    /// runs. A store that keeps its counts in place needs nothing here.
    async fn queue_counts_fold(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Every known queue with its counts.
    async fn queue_list(&self) -> Result<Vec<QueueInfo>, StoreError>;

    /// One queue. Errors: `NotFound`.
    async fn queue_get(&self, name: &QueueName) -> Result<QueueInfo, StoreError>;

    /// Changes a queue's settings (concurrency, rate, job defaults) and pause, creating
    /// the queue when missing. A raised concurrency takes effect on the next claim.
    /// Errors: `Invalid` for values the patch's own validation refuses.
    async fn queue_update(
        &self,
        name: &QueueName,
        patch: errand_core::queue::QueueSettingsPatch,
    ) -> Result<QueueInfo, StoreError>;

    /// Stops handing out a queue's jobs; enqueues still land. Errors: `NotFound`.
    async fn queue_pause(&self, name: &QueueName) -> Result<QueueInfo, StoreError>;

    /// Hands out a paused queue's jobs again. Errors: `NotFound`.
    async fn queue_resume(&self, name: &QueueName) -> Result<QueueInfo, StoreError>;

    /// Makes selected dead jobs available again with one more attempt; returns how many.
    async fn dead_requeue_many(&self, selection: DeadSelection) -> Result<u64, StoreError>;

    /// Deletes selected dead jobs and their attempts; returns how many.
    async fn dead_purge_many(&self, selection: DeadSelection) -> Result<u64, StoreError>;

    /// Deletes finished jobs (and their attempts) past their retention, oldest first;
    /// returns how many.
    async fn job_prune(&self, params: JobPruneParams) -> Result<u64, StoreError>;

    /// Inserts jobs exactly as exported from another store (same ids, states, attempts,
    /// timestamps), skipping any whose id or idempotency key is already taken, so an import
    /// can be repeated. A job that was `running` arrives `available`: its lease belonged to
    /// the other store; its open attempt is recorded as `lease_expired`. Their queues come
    /// into being. Returns how many jobs were inserted.
    async fn job_restore_many(&self, jobs: Vec<RestoredJob>) -> Result<u64, StoreError>;

    /// Creates a queue or updates its settings (import, declarative configuration).
    async fn queue_upsert(&self, params: QueueUpsertParams) -> Result<(), StoreError>;

    /// The store's clock now, in milliseconds. Leases and schedules run on this clock, so
    /// every node computes slots from the same time.
    async fn clock_now(&self) -> Result<Millis, StoreError>;

    /// Creates a schedule ([`SchedulePut::Create`](crate::SchedulePut): `AlreadyExists` when the
    /// name is taken) or replaces its definition, keeping its history and slot ledger; a
    /// replace takes back the jobs written ahead for slots still to come.
    async fn schedule_put(&self, params: SchedulePutParams) -> Result<ScheduleChange, StoreError>;

    /// One schedule, with its last job's state. Errors: `NotFound`.
    async fn schedule_get(&self, name: &ScheduleName) -> Result<Schedule, StoreError>;

    /// Every schedule by name.
    async fn schedule_list(&self) -> Result<Vec<Schedule>, StoreError>;

    /// Deletes a schedule; jobs it fired stay, but those written ahead for slots still to
    /// come are taken back and returned. Errors: `NotFound`.
    async fn schedule_delete(&self, name: &ScheduleName) -> Result<Vec<Job>, StoreError>;

    /// Stops a schedule firing, taking back the jobs written ahead for slots still to come.
    /// Errors: `NotFound`.
    async fn schedule_pause(&self, name: &ScheduleName) -> Result<ScheduleChange, StoreError>;

    /// Lets a paused schedule fire again; slots missed meanwhile follow its catch-up
    /// policy. Errors: `NotFound`.
    async fn schedule_resume(&self, name: &ScheduleName) -> Result<Schedule, StoreError>;

    /// The store's clock now, and up to `limit` schedules that have work: not paused, and a
    /// slot due (within `ahead` of now for a schedule that
    /// [fires ahead](errand_core::schedule_spec::ScheduleSpec::fires_ahead)), or a buffered
    /// slot whose previous run has ended. A buffered slot waiting for a run still going is
    /// left out, so waiting costs no pass any work.
    async fn schedule_due(
        &self,
        limit: u32,
        ahead: Duration,
    ) -> Result<(Millis, Vec<Schedule>), StoreError>;

    /// Applies scheduler decisions about many schedules in one transaction: per schedule,
    /// the compare-and-set, the `replace` cancel, the slot jobs (one per slot at most), the
    /// next slot and the last fire. Outcomes come in input order.
    async fn schedule_fire_many(
        &self,
        params: Vec<ScheduleFireParams>,
    ) -> Result<Vec<ScheduleFireOutcome>, StoreError>;

    /// A page of a schedule's slot ledger, oldest first (export).
    async fn schedule_slot_list(
        &self,
        params: ScheduleSlotListParams,
    ) -> Result<Vec<ScheduleSlotRecord>, StoreError>;

    /// Inserts slot ledger rows as exported, skipping slots already recorded (import is
    /// repeatable). Returns how many were inserted.
    async fn schedule_slot_restore_many(
        &self,
        slots: Vec<ScheduleSlotRecord>,
    ) -> Result<u64, StoreError>;

    /// Deletes ledger rows of slots older than catch-up and backfill can reach, oldest
    /// first; returns how many.
    async fn schedule_slot_prune(&self, params: ScheduleSlotPruneParams)
        -> Result<u64, StoreError>;

    /// Records that a node is alive (registering it on the first call).
    async fn node_heartbeat(&self, params: NodeHeartbeatParams) -> Result<(), StoreError>;

    /// Marks a node as cleanly stopped.
    async fn node_stop(&self, id: NodeId) -> Result<(), StoreError>;

    /// Every node seen within `forget_after`, newest first; a node whose last heartbeat is
    /// older than `dead_after` is `dead`.
    async fn node_list(
        &self,
        dead_after: Duration,
        forget_after: Duration,
    ) -> Result<Vec<NodeInfo>, StoreError>;

    /// Stores a batch of lines a run printed, numbered on from the attempt's last line, in
    /// one transaction; then applies the per-attempt bound (lines numbered above `keep_head`
    /// and up to `last - keep_tail` are deleted, so a gap in the numbers tells how many were
    /// dropped). Returns the number of the batch's last line (the attempt's last so far for
    /// an empty batch, 0 for none). Appends to one `(owner, attempt)` come from one writer.
    /// Errors (fenced appends only, which then write nothing): `NotFound`, `LeaseLost`.
    async fn job_log_append(&self, params: JobLogAppendParams) -> Result<u64, StoreError>;

    /// A page of stored lines of a job or instance, by attempt then number.
    async fn job_log_list(&self, params: JobLogListParams) -> Result<Vec<LogEntry>, StoreError>;

    /// Deletes up to `limit` lines printed longer than `older_than` ago (store clock) whose
    /// owner is not a job: the logs of continuous instances. A job's lines go with the job
    /// (`job_prune`, `dead_purge_many`). Returns how many.
    async fn job_log_prune(&self, older_than: Duration, limit: u32) -> Result<u64, StoreError>;

    /// Takes or renews a named lease: true when it was free, expired (store clock) or
    /// already this holder's, and is now the holder's until `ttl` from now; false when
    /// another holder has it.
    async fn lease_acquire(&self, params: LeaseAcquireParams) -> Result<bool, StoreError>;

    /// Gives a named lease up, when `holder` holds it (anyone else's call changes nothing).
    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Creates or replaces the record of a continuous instance, by `(node, instance)`; its
    /// `updated_at` becomes the store's now.
    async fn instance_put(&self, record: InstanceRecord) -> Result<(), StoreError>;

    /// The instances of one definition (or of all), by definition, node, instance.
    async fn instance_list(
        &self,
        definition: Option<String>,
    ) -> Result<Vec<InstanceRecord>, StoreError>;

    /// Forgets one instance record; none is no error.
    async fn instance_delete(&self, node: NodeId, instance: uuid::Uuid) -> Result<(), StoreError>;

    /// Deletes instance records not updated for `stale_after` (their node died without
    /// cleaning up); returns how many.
    async fn instance_prune(&self, stale_after: Duration) -> Result<u64, StoreError>;

    /// Records whether a job definition is stopped, for every node and across restarts.
    async fn definition_switch_put(&self, name: String, stopped: bool) -> Result<(), StoreError>;

    /// Every recorded definition switch by name: `(name, stopped)`.
    async fn definition_switch_list(&self) -> Result<Vec<(String, bool)>, StoreError>;

    /// Inserts the mark `(scope, key)` and the job in one transaction; when the mark is
    /// already there (even if its job is long gone), inserts nothing and answers `None`.
    async fn job_insert_marked(
        &self,
        params: JobInsertMarkedParams,
    ) -> Result<Option<InsertedJob>, StoreError>;

    /// Every mark of a scope, sorted.
    async fn mark_list(&self, scope: &str) -> Result<Vec<String>, StoreError>;

    /// Deletes these marks of a scope; returns how many there were.
    async fn mark_delete(&self, scope: &str, keys: Vec<String>) -> Result<u64, StoreError>;

    // ----- Event log (written by every job transition; read by streams, waiters, fan-out)

    /// Up to `limit` events after `after` (from the oldest kept when `None`), in commit
    /// order. On PostgreSQL only events whose transaction is older than every transaction
    /// still running are returned, so a reader never passes an event that commits later
    /// with a smaller id. `missed_through` tells a reader its cursor fell out of retention.
    async fn event_read(
        &self,
        after: Option<errand_core::EventId>,
        limit: u32,
    ) -> Result<crate::EventPage, StoreError>;

    /// The newest readable event's id (`None`: the log is empty): where a stream that asks
    /// for no history starts.
    async fn event_head(&self) -> Result<Option<errand_core::EventId>, StoreError>;

    /// Deletes old events (see [`EventPruneParams`](crate::EventPruneParams)) and records
    /// the newest deleted id, so readers behind it learn they missed events. Returns how
    /// many went.
    async fn event_prune(&self, params: crate::EventPruneParams) -> Result<u64, StoreError>;

    // ----- Subscriptions and deliveries

    /// Creates a subscription; its `created_at` is the store's now.
    async fn subscription_create(
        &self,
        new: errand_core::NewSubscription,
    ) -> Result<errand_core::Subscription, StoreError>;

    /// One subscription. Errors: `NotFound`.
    async fn subscription_get(
        &self,
        id: errand_core::SubscriptionId,
    ) -> Result<errand_core::Subscription, StoreError>;

    /// Every subscription, oldest first.
    async fn subscription_list(&self) -> Result<Vec<errand_core::Subscription>, StoreError>;

    /// Changes a subscription. Resuming clears its pause reason and failure count.
    /// Errors: `NotFound`.
    async fn subscription_update(
        &self,
        id: errand_core::SubscriptionId,
        patch: errand_core::SubscriptionPatch,
    ) -> Result<errand_core::Subscription, StoreError>;

    /// Deletes a subscription and its pending deliveries (its finished ones stay until
    /// pruned). Errors: `NotFound`.
    async fn subscription_delete(&self, id: errand_core::SubscriptionId) -> Result<(), StoreError>;

    /// Where the subscription fan-out has read the event log to (`None`: never ran).
    async fn delivery_cursor(&self) -> Result<Option<errand_core::EventId>, StoreError>;

    /// Inserts the deliveries and moves the fan-out cursor, if it is still at `from`:
    /// true when done, false (nothing written) when another node moved it first.
    async fn delivery_fanout(
        &self,
        params: crate::DeliveryFanoutParams,
    ) -> Result<bool, StoreError>;

    /// Leases up to `max` pending deliveries that are due (oldest due first), counting an
    /// attempt for each, skipping those of paused subscriptions.
    async fn delivery_claim(
        &self,
        params: crate::DeliveryClaimParams,
    ) -> Result<Vec<errand_core::ClaimedDelivery>, StoreError>;

    /// Records an attempt and its outcome, fenced on the claim's token, and keeps the
    /// subscription's failure count (pausing it at `pause_after_failures`).
    /// Errors: `NotFound`, `LeaseLost`.
    async fn delivery_settle(
        &self,
        params: crate::DeliverySettleParams,
    ) -> Result<errand_core::Delivery, StoreError>;

    /// A page of deliveries with their attempts, newest first.
    async fn delivery_list(
        &self,
        params: crate::DeliveryListParams,
    ) -> Result<Vec<errand_core::Delivery>, StoreError>;

    /// Deletes up to `limit` finished deliveries (and their attempts) that ended longer
    /// than `older_than` ago, and pending deliveries whose subscription is gone (a fan-out
    /// that raced the subscription's deletion). Returns how many.
    async fn delivery_prune(&self, older_than: Duration, limit: u32) -> Result<u64, StoreError>;

    /// Creates or replaces the limit of a kind or rate key. Errors: `Invalid`.
    async fn limit_put(
        &self,
        limit: errand_core::throttle::Limit,
    ) -> Result<errand_core::throttle::LimitInfo, StoreError>;

    /// One limit with its use. Errors: `NotFound`.
    async fn limit_get(
        &self,
        scope: errand_core::throttle::LimitScope,
        name: &str,
    ) -> Result<errand_core::throttle::LimitInfo, StoreError>;

    /// Every kind and rate-key limit with its use, by scope then name.
    async fn limit_list(&self) -> Result<Vec<errand_core::throttle::LimitInfo>, StoreError>;

    /// Removes a limit; jobs it held back become claimable. Errors: `NotFound`.
    async fn limit_delete(
        &self,
        scope: errand_core::throttle::LimitScope,
        name: &str,
    ) -> Result<(), StoreError>;

    /// One session. Errors: `NotFound` when no job ever named it and no state was set.
    async fn session_get(&self, key: &str) -> Result<errand_core::session::Session, StoreError>;

    /// A page of sessions by key.
    async fn session_list(
        &self,
        params: crate::SessionListParams,
    ) -> Result<Vec<errand_core::session::Session>, StoreError>;

    /// Sets a session's state by compare-and-set on its version. Errors:
    /// `VersionConflict`, `Invalid` (state too big).
    async fn session_state_put(
        &self,
        params: crate::SessionStatePutParams,
    ) -> Result<errand_core::session::Session, StoreError>;

    /// Moves a session past the dead job blocking it: its next job gets its turn (the
    /// dead job stays dead). Errors: `NotFound`, `WrongState` when it is not blocked.
    async fn session_unblock(&self, key: &str)
        -> Result<errand_core::session::Session, StoreError>;

    /// What bears on why a job waits, read in one transaction. Errors: `NotFound`.
    async fn job_explain_facts(
        &self,
        id: JobId,
    ) -> Result<errand_core::explain::ExplainFacts, StoreError>;

    /// Records what nodes saw of workers (upsert by worker name: the latest claim wins).
    async fn worker_seen_many(
        &self,
        seen: Vec<errand_core::worker::WorkerSeen>,
    ) -> Result<(), StoreError>;

    /// Workers seen, latest claim first, with the jobs each holds now.
    async fn worker_list(&self) -> Result<Vec<errand_core::worker::WorkerInfo>, StoreError>;

    /// Forgets workers not seen for `older_than`; returns how many.
    async fn worker_prune(&self, older_than: Duration) -> Result<u64, StoreError>;

    /// Creates a workflow in one transaction: its record, its steps, their jobs (steps
    /// without parents `available`, the others `blocked`, waiting for their parents'
    /// success) and the edges between them. A repeat of an idempotency key within the window
    /// returns the first workflow and creates nothing (`.1` false).
    async fn workflow_create(
        &self,
        params: crate::WorkflowCreateParams,
    ) -> Result<(errand_core::workflow::Workflow, bool), StoreError>;

    /// One workflow with every step. Errors: `NotFound`.
    async fn workflow_get(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError>;

    /// A page of workflows, newest first.
    async fn workflow_list(
        &self,
        params: crate::WorkflowListParams,
    ) -> Result<Vec<errand_core::workflow::WorkflowSummary>, StoreError>;

    /// Cancels a running workflow ([`errand_core::workflow::WorkflowEvent::CancelRequested`]):
    /// steps not started are cancelled, running ones by its `on_failure`, then completed
    /// steps are compensated. Errors: `NotFound`, `WrongState` when it is not running.
    async fn workflow_cancel(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError>;

    /// Resumes a workflow that ended other than `succeeded` from its failed steps
    /// ([`errand_core::workflow::plan_retry`]). Errors: `NotFound`, `WrongState`.
    async fn workflow_retry(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError>;

    /// Acts on up to `limit` workflow jobs whose deadline passed (store clock), each once
    /// across nodes: by its [`errand_core::flow::DeadlinePolicy`]. Returns what was done.
    async fn workflow_supervise(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::SupervisedStep>, StoreError>;

    /// Stores a workflow template (replacing one of the same name).
    async fn workflow_template_put(
        &self,
        name: &str,
        spec: errand_core::workflow::WorkflowSpec,
    ) -> Result<(), StoreError>;

    /// One workflow template. Errors: `NotFound`.
    async fn workflow_template_get(
        &self,
        name: &str,
    ) -> Result<errand_core::workflow::WorkflowSpec, StoreError>;

    /// Every workflow template, by name.
    async fn workflow_template_list(
        &self,
    ) -> Result<Vec<(String, errand_core::workflow::WorkflowSpec)>, StoreError>;

    /// Deletes a workflow template. Errors: `NotFound`.
    async fn workflow_template_delete(&self, name: &str) -> Result<(), StoreError>;

    /// Creates a batch and inserts its first jobs (their `flow.batch` is the batch's id) in
    /// one transaction. A closed batch with no pending job completes at once.
    async fn batch_create(
        &self,
        batch: errand_core::batch::NewBatch,
        params: JobInsertManyParams,
    ) -> Result<crate::BatchWrite, StoreError>;

    /// Adds jobs to an open batch. Errors: `NotFound`, `WrongState` when it is not open.
    async fn batch_add(
        &self,
        id: errand_core::BatchId,
        params: JobInsertManyParams,
    ) -> Result<crate::BatchWrite, StoreError>;

    /// Closes an open batch: it completes when its last job ends (at once if none is
    /// pending). Closing a closed or completed batch changes nothing. Errors: `NotFound`.
    async fn batch_close(
        &self,
        id: errand_core::BatchId,
    ) -> Result<errand_core::batch::Batch, StoreError>;

    /// One batch. Errors: `NotFound`.
    async fn batch_get(
        &self,
        id: errand_core::BatchId,
    ) -> Result<errand_core::batch::Batch, StoreError>;

    /// A page of batches, newest first.
    async fn batch_list(
        &self,
        params: crate::BatchListParams,
    ) -> Result<Vec<errand_core::batch::Batch>, StoreError>;

    // ----- API tokens and the audit trail

    /// Stores a new token. Errors: `AlreadyExists` when a token that is not revoked has
    /// the name; `AlreadyExists` when the id is taken.
    async fn token_create(
        &self,
        new: errand_core::NewToken,
    ) -> Result<errand_core::ApiToken, StoreError>;

    /// One token with its secret's hash, revoked or not. Errors: `NotFound`.
    async fn token_get(
        &self,
        id: errand_core::TokenId,
    ) -> Result<errand_core::StoredToken, StoreError>;

    /// Every token, revoked ones too, oldest first.
    async fn token_list(&self) -> Result<Vec<errand_core::ApiToken>, StoreError>;

    /// Revokes a token for good (the store's now); revoking it again keeps the first time.
    /// Errors: `NotFound`.
    async fn token_revoke(
        &self,
        id: errand_core::TokenId,
    ) -> Result<errand_core::ApiToken, StoreError>;

    /// Records that a token was used at `at` (kept only if later than what is stored).
    /// A token that does not exist is ignored.
    async fn token_used(
        &self,
        id: errand_core::TokenId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError>;

    /// Ends the dashboard sessions made from a token up to `at` (kept only if later than
    /// what is stored). A token that does not exist is ignored.
    async fn token_end_sessions(
        &self,
        id: errand_core::TokenId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError>;

    /// Appends an entry to the audit trail (its id and time from the store), durably.
    async fn audit_append(
        &self,
        entry: errand_core::NewAuditEntry,
    ) -> Result<errand_core::AuditEntry, StoreError>;

    /// A page of the audit trail, newest first.
    async fn audit_list(
        &self,
        params: crate::AuditListParams,
    ) -> Result<Vec<errand_core::AuditEntry>, StoreError>;

    /// Wake-ups from the store: names of queues that gained ready jobs the engine did not
    /// write itself (other processes sharing the store, and jobs a flow made ready: released
    /// continuations and steps, compensations, `on_complete` jobs). `None` when there are
    /// none to hear.
    fn wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<QueueName>> {
        None
    }

    /// Tells claims waiting on other processes sharing the store that `queue` has jobs
    /// ready that no write announced: jobs written ahead of their slot become due by the
    /// clock alone, and the write that promotes them follows later. A store no other
    /// process shares has nobody to tell.
    fn announce_ready(&self, _queue: &QueueName) {}
}
