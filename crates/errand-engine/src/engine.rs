//! [`Engine`]: the operations of errand, with the wake-ups and events they imply.

use std::sync::Arc;
use std::time::Duration;

use errand_core::{Attempt, Job, JobId, JobKind, JobState, NewJob, NodeId, QueueName};
use errand_store::{
    ClaimedJob, DeadSelection, InsertedJob, JobHeartbeatParams, JobInsertManyParams, JobListParams,
    JobSettleManyParams, Settled, Settlement, SharedStore, StoreError,
};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::event_feed::EventFeed;
use crate::job_events::{JobEvent, LogAppended};
use crate::metrics::Metrics;
use crate::queue_waker::{QueueWaker, Ready};
use crate::unheard_claim::UnheardClaim;
use crate::waiters::Waiters;
use crate::EngineConfig;

/// Events buffered per subscriber before a slow one starts missing some (it then re-reads
/// the store, so a miss costs a query, not a wrong answer).
const EVENT_BUFFER: usize = 8192;

/// A claim, possibly waiting for work.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Queue to take from.
    pub queue: QueueName,
    /// Who claims.
    pub worker: String,
    /// At most this many jobs.
    pub max: u32,
    /// Lease length.
    pub lease: Duration,
    /// Only these kinds (empty: any).
    pub kinds: Vec<JobKind>,
    /// Wait this long for work when none is ready.
    pub wait: Duration,
}

/// The job engine. Clone the `Arc` to share it.
pub struct Engine {
    store: SharedStore,
    config: EngineConfig,
    waker: Arc<QueueWaker>,
    events: broadcast::Sender<JobEvent>,
    log_events: broadcast::Sender<LogAppended>,
    shutdown: CancellationToken,
    /// Set when the node began to drain: `/readyz` fails so load balancers stop sending it
    /// work, while it still serves what they send until they have noticed.
    draining: std::sync::atomic::AtomicBool,
    node_id: NodeId,
    /// The event log's live tail, shared by every event stream of this node.
    pub(crate) feed: EventFeed,
    /// Callers waiting for jobs to end.
    pub(crate) waiters: Arc<Waiters>,
    /// When delayed jobs and retries next come due: the promoter sleeps until then.
    pub(crate) promote_due: crate::due_clock::DueClock,
    /// When a lease or timeout next ends: the rescuer sleeps until then.
    pub(crate) rescue_due: crate::due_clock::DueClock,
    /// When a schedule next has a slot (or a buffered slot was freed): the scheduler sleeps
    /// until then.
    pub(crate) fire_due: crate::due_clock::DueClock,
    /// When a workflow step's deadline next passes: the workflow supervisor sleeps until
    /// then.
    pub(crate) deadline_due: crate::due_clock::DueClock,
    /// When this node's writes next want their queue count rows folded.
    pub(crate) fold_due: crate::due_clock::DueClock,
    /// Rung when this process recorded a delivery that is due now (a fan-out, a job with a
    /// `callback_url` ending), so the delivery worker sends it without waiting for its poll.
    pub(crate) deliveries_due: Arc<tokio::sync::Notify>,
    /// Workers' cycles waiting to go to the store together.
    pub(crate) combiner: crate::claim_combiner::ClaimCombiner,
    /// Enqueues waiting to go to the store together.
    pub(crate) inserts: crate::insert_combiner::InsertCombiner,
    /// Workers seen claiming since the last flush to the store.
    pub(crate) workers_seen: crate::worker_registry::WorkerRegistry,
    /// What this node says about itself (store, roles), set once at start.
    about: std::sync::OnceLock<errand_core::NodeAbout>,
    /// What this node did, for `GET /metrics` (shared with detached store calls).
    pub(crate) metrics: Arc<Metrics>,
    /// Tokens checked lately, and when each was last recorded as used.
    pub(crate) tokens: crate::tokens::TokenCache,
    /// This engine, for work that must finish after its caller stops waiting (a settle
    /// whose client disconnected still announces what it kept).
    me: std::sync::Weak<Engine>,
}

impl Engine {
    /// An engine over `store`.
    pub fn new(store: SharedStore, config: EngineConfig) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (log_events, _) = broadcast::channel(EVENT_BUFFER);
        let feed = EventFeed::new(config.event_buffer);
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            feed,
            waiters: Arc::default(),
            store,
            config,
            waker: Arc::new(QueueWaker::default()),
            events,
            log_events,
            shutdown: CancellationToken::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            node_id: NodeId::new(),
            promote_due: Default::default(),
            rescue_due: Default::default(),
            fire_due: Default::default(),
            deadline_due: Default::default(),
            fold_due: Default::default(),
            deliveries_due: Arc::new(tokio::sync::Notify::new()),
            combiner: Default::default(),
            inserts: Default::default(),
            workers_seen: Default::default(),
            about: std::sync::OnceLock::new(),
            metrics: Arc::new(Metrics::new()),
            tokens: Default::default(),
        })
    }

    /// Records what this node says about itself (its store and roles) for `GET /v1/nodes`;
    /// the first call wins.
    pub fn set_about(&self, about: errand_core::NodeAbout) {
        let _ = self.about.set(about);
    }

    /// What this node says about itself, when the process set it.
    pub fn about(&self) -> Option<&errand_core::NodeAbout> {
        self.about.get()
    }

    /// This process's node id, new at every start.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// How many store calls of one lane the combiners make at once: the configured number,
    /// else the store's ([`errand_store::Store::combined_calls_at_once`]).
    pub(crate) fn combined_calls_at_once(&self) -> usize {
        self.config
            .combined_calls_at_once
            .unwrap_or_else(|| self.store.combined_calls_at_once())
            .max(1)
    }

    /// Where claims wait for their queues' work, for parts of the engine kept apart.
    pub(crate) fn waker(&self) -> &Arc<QueueWaker> {
        &self.waker
    }

    /// The store underneath. Only the engine touches it: callers go through the engine's
    /// methods, which own every side effect.
    pub(crate) fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Cancelled when the engine shuts down: waiting claims and waits return at once.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Subscribes to job state changes in this process.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// Subscribes to log lines stored by this process (followers of a run's log wake on
    /// them instead of polling; lines stored by other nodes need a re-read).
    pub fn subscribe_logs(&self) -> broadcast::Receiver<LogAppended> {
        self.log_events.subscribe()
    }

    pub(crate) fn publish_log(&self, event: LogAppended) {
        // No subscriber is not an error.
        let _ = self.log_events.send(event);
    }

    /// Wakes the claims of a queue that gained `n` ready jobs.
    pub(crate) fn wake_ready(&self, queue: &QueueName, n: usize) {
        self.waker.wake(queue, Ready::Jobs(n));
    }

    /// At `at` (milliseconds since the epoch on the store's clock), when `n` jobs this node
    /// wrote ahead become ready on `queue`: wakes the claims waiting there, which take a
    /// `scheduled` job whose time has come as they find it, so the jobs start at their slot
    /// rather than after the promoter's write (which follows a promote interval later, see
    /// `note_due_work`), and tells other nodes' claims through the store. With no claim on
    /// the queue here, the promoter runs now instead, so the queue's counts (and other
    /// nodes' claims) see the jobs at their slot. `clock` is
    /// the store's time and the instant it was read, so the wait follows the store's clock
    /// (PostgreSQL's may differ from this machine's).
    pub(crate) fn wake_ready_at(
        &self,
        queue: QueueName,
        at: errand_core::Millis,
        n: usize,
        clock: (errand_core::Millis, Instant),
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store_then, read_at) = clock;
        let elapsed = i64::try_from(read_at.elapsed().as_millis()).unwrap_or(i64::MAX);
        let wait = at.saturating_sub(store_then.saturating_add(elapsed));
        // A millisecond late rather than early: a claim a moment early finds nothing.
        let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0).saturating_add(1));
        let engine = self.me.clone();
        let shutdown = self.shutdown.clone();
        runtime.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
            let Some(engine) = engine.upgrade() else {
                return;
            };
            // Claims on the queue (parked, or woken by the timer of another batch of the
            // same pass and claiming now) take the jobs; only with none does the promoter.
            if engine.waker.claiming(&queue) > 0 {
                engine.waker.wake(&queue, Ready::Jobs(n));
                // Claims on other nodes hear it now too, not at the promoter's write.
                engine.store.announce_ready(&queue);
            } else {
                engine.promote_due.poke();
            }
        });
    }

    pub(crate) fn publish(&self, job: &Job) {
        self.jobs_changed();
        self.note_due_work(job);
        if job.state.is_final() {
            self.waiters.wake(job.id);
        }
        // No subscriber is not an error.
        let _ = self.events.send(JobEvent {
            id: job.id,
            queue: job.queue.clone(),
            state: job.state,
        });
        if job.state == JobState::Available {
            self.waker.wake(&job.queue, Ready::Jobs(1));
        } else if job.state != JobState::Running && job.ordering.gate().is_some() {
            // A job leaving its gate's place lets the next in line in, most often a job of
            // the same queue: its claims wake now rather than at their next re-check.
            self.waker.wake(&job.queue, Ready::Jobs(1));
        }
        if (job.callback_url.is_some() || job.flow.batch_id.is_some()) && job.state.is_final() {
            // The store recorded the job's callback (or its batch's, when it was the last)
            // with its end: send it now.
            self.deliveries_due.notify_one();
        }
        // A job that ended left its reply in `reply_to` in the same transaction.
        if let (true, Some(reply_to)) = (job.state.is_final(), &job.reply_to) {
            self.waker.wake(reply_to, Ready::Jobs(1));
        }
    }

    /// Announces a job's new state when only its id, queue and state are at hand (a
    /// workflow's steps): the event, its waiters when it ended, its queue's claims when it
    /// became ready.
    pub(crate) fn publish_state(&self, id: JobId, queue: &QueueName, state: JobState) {
        self.jobs_changed();
        if state.is_final() {
            self.waiters.wake(id);
        }
        let _ = self.events.send(JobEvent {
            id,
            queue: queue.clone(),
            state,
        });
        if state == JobState::Available {
            self.waker.wake(queue, Ready::Jobs(1));
        }
    }

    /// A write of this node changed jobs: the event tail reads their events, and the count
    /// rows the write appended want folding.
    pub(crate) fn jobs_changed(&self) {
        self.feed.poke();
        self.counts_changed();
    }

    /// A write changed jobs, so the queue count rows it appended (on stores that append
    /// them) want folding soon.
    pub(crate) fn counts_changed(&self) {
        self.fold_due.note_in(crate::maintenance::FOLD_DELAY);
    }

    /// Tells the timed services of work `job` brings: a delayed job or a retry comes due
    /// at its `run_at`; a schedule's job that ended may free the schedule's buffered slot;
    /// a workflow step has its deadline, and one that ended may have made the next steps
    /// ready (with deadlines the store set, so the supervisor asks for them).
    fn note_due_work(&self, job: &Job) {
        if job.state == JobState::Scheduled {
            // A schedule's job written ahead: claims woken at its slot
            // (`wake_ready_at`) take it first, and the promoter follows a promote interval
            // later for what they left (and to tell other nodes). Promoting at the slot
            // itself would race those claims: on PostgreSQL its row locks make them skip
            // the very jobs it is promoting.
            let later = if crate::schedules::written_ahead(job) {
                self.config.promote_interval
            } else {
                Duration::ZERO
            };
            let at = errand_core::time::to_millis(job.run_at)
                .saturating_add(i64::try_from(later.as_millis()).unwrap_or(i64::MAX));
            self.promote_due.note_at(at);
        } else if job.state.is_final()
            && job.schedule.is_some()
            && !crate::schedules::written_before_its_slot(job)
        {
            // Only a run a `buffer_one` schedule waits on can free a slot by ending. A
            // job written ahead cannot be one; at a slot of 1,000 such jobs, each batch of
            // completions woke a pass that read every schedule while the slot's claims ran.
            self.fire_due.poke();
        }
        if job.flow.workflow_id.is_some() {
            self.note_step(job.state, job.flow.deadline_at);
        }
    }

    /// Tells the workflow supervisor of a step's state: an unfinished step's deadline is
    /// when it may have work; a finished one may have readied others.
    pub(crate) fn note_step(&self, state: JobState, deadline_at: Option<jiff::Timestamp>) {
        if state.is_final() {
            self.deadline_due.ask();
        } else if let Some(at) = deadline_at {
            self.deadline_due.note_at(errand_core::time::to_millis(at));
        }
    }

    /// Tells the rescuer when the leases (and timeouts) of jobs just claimed end.
    fn note_leases(&self, claimed: &[ClaimedJob]) {
        for c in claimed {
            if let Some(end) = c.job.lease_expires_at {
                self.rescue_due.note_at(errand_core::time::to_millis(end));
            }
            if let (Some(started), Some(timeout)) = (c.job.started_at, c.job.timeout_ms) {
                let end = errand_core::time::to_millis(started)
                    .saturating_add(i64::try_from(timeout).unwrap_or(i64::MAX));
                self.rescue_due.note_at(end);
            }
        }
    }

    /// Wakes every claim waiting on `queue` (the number of ready jobs is unknown).
    pub(crate) fn wake(&self, queue: &QueueName) {
        self.waker.wake(queue, Ready::Unknown);
    }

    pub(crate) fn wake_all(&self) {
        self.waker.wake_all();
    }

    /// An insert of `jobs` under the server's idempotency window: every enqueue path
    /// (jobs, batches) builds its store call here.
    pub(crate) fn insert_params(&self, jobs: Vec<NewJob>) -> JobInsertManyParams {
        JobInsertManyParams {
            jobs,
            idempotency_window: self.config.idempotency_window,
        }
    }

    /// Stores jobs atomically and wakes the workers of their queues.
    ///
    /// Small plain enqueues of one queue that arrive together go to the store as one
    /// insert ([`crate::insert_combiner`]); each stays all-or-nothing. The insert and its
    /// announcements complete even when the caller stops waiting.
    ///
    /// # Errors
    /// The store's error; nothing was stored, but after `Corrupt` (the store's answer did
    /// not match what was sent) or `Unavailable` (the answer was lost), which say nothing
    /// of whether it was.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<InsertedJob>, StoreError> {
        self.insert_combined(jobs).await
    }

    /// Wakes the claims of the queues that gained ready jobs in an insert, and the event
    /// feed.
    pub(crate) fn announce_inserted(&self, out: &[InsertedJob]) {
        self.announce_inserted_handed(out, 0);
    }

    /// [`announce_inserted`](Self::announce_inserted) for an insert whose own transaction
    /// leased `handed` jobs of its queue to parked claims ([`crate::handoff`]): those are
    /// not woken for.
    pub(crate) fn announce_inserted_handed(&self, out: &[InsertedJob], mut handed: usize) {
        self.metrics.inserted(out);
        if out.iter().any(|r| r.inserted) {
            self.jobs_changed();
        }
        let mut ready: Vec<(&QueueName, usize)> = Vec::new();
        for r in out
            .iter()
            .filter(|r| r.inserted && r.job.state == JobState::Available)
        {
            match ready.iter_mut().find(|(q, _)| *q == &r.job.queue) {
                Some((_, n)) => *n += 1,
                None => ready.push((&r.job.queue, 1)),
            }
        }
        for (queue, n) in ready {
            let taken = handed.min(n);
            handed -= taken;
            if n > taken {
                self.waker.wake(queue, Ready::Jobs(n - taken));
            }
        }
        for r in out.iter().filter(|r| r.inserted) {
            self.note_due_work(&r.job);
        }
        // A continuation inserted already doomed (its parent ended badly) ended now.
        for r in out.iter().filter(|r| r.inserted && r.job.state.is_final()) {
            self.waiters.wake(r.job.id);
        }
    }

    /// Claims ready jobs, waiting up to `wait` for some to appear.
    ///
    /// Dropping the returned future (a long-poll whose client went away) never loses a job:
    /// a store claim already under way finishes in a task of its own, and jobs it took for
    /// a caller that is gone are released at once, their attempt uncounted; a claim still
    /// waiting to go with others of its queue is made for nothing.
    ///
    /// # Errors
    /// The store's error.
    pub async fn claim(&self, req: ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        self.note_worker(&req);
        self.claim_unlisted(req).await
    }

    /// Lists the claimer among the workers seen.
    fn note_worker(&self, req: &ClaimRequest) {
        self.workers_seen.note(
            &req.worker,
            self.node_id,
            &req.queue,
            &req.kinds,
            errand_core::time::system_now(),
        );
    }

    /// [`claim`](Self::claim) without listing the claimer among the workers seen: errand's
    /// own built-in workers (the workflow starter) are not the user's workers.
    pub(crate) async fn claim_unlisted(
        &self,
        req: ClaimRequest,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        Ok(self.cycle_waiting(Vec::new(), req).await?.1)
    }

    /// What every claim does once its caller has the jobs: the rescuer learns when their
    /// leases end, the metrics count them, the event tail reads their `job.started`.
    pub(crate) fn announce_claimed(&self, queue: &QueueName, jobs: &[ClaimedJob]) {
        self.note_leases(jobs);
        self.metrics.claimed(queue.as_str(), jobs);
        if !jobs.is_empty() {
            self.jobs_changed();
        }
    }

    /// Jobs a store claim took for a caller who has not heard of them yet: given back to
    /// their queue unless the caller takes them ([`UnheardClaim`]).
    pub(crate) fn unheard(&self, jobs: Vec<ClaimedJob>) -> UnheardClaim {
        UnheardClaim::new(jobs, self.store.clone(), self.waker.clone())
    }

    /// Gives leased jobs back to their queues as if their claims never happened (the
    /// attempt is not counted): the runs of a node that is shutting down, and workers that
    /// stop before a job ends (`POST /v1/jobs/{id}/release`). A lease that no longer holds
    /// its job is skipped: the answer lists only the jobs given back.
    ///
    /// # Errors
    /// The store's error.
    pub async fn release(
        &self,
        leases: Vec<(JobId, errand_core::LeaseToken)>,
    ) -> Result<Vec<Job>, StoreError> {
        let jobs = self
            .store
            .job_release_many(errand_store::JobReleaseManyParams { leases })
            .await?;
        for job in &jobs {
            self.publish(job);
            // Ready again: a claim waiting on the queue takes it now, not at its re-check.
            self.waker.wake(&job.queue, Ready::Jobs(1));
        }
        Ok(jobs)
    }

    /// Claims parked on `queue` in this process right now, waiting for work: it shows idle
    /// workers, and tells a caller that a claim waits before it measures a wake-up.
    pub fn waiting_claims(&self, queue: &QueueName) -> usize {
        self.waker.parked(queue)
    }

    /// Extends a lease and records progress and checkpoint.
    ///
    /// # Errors
    /// `NotFound`, `LeaseLost`, or the store's error.
    pub async fn heartbeat(&self, params: JobHeartbeatParams) -> Result<Job, StoreError> {
        let progress = params.progress.is_some();
        let job = self
            .metrics
            .timed("job_heartbeat", self.store.job_heartbeat(params))
            .await?;
        // A heartbeat may shorten the lease.
        if let Some(end) = job.lease_expires_at {
            self.rescue_due.note_at(errand_core::time::to_millis(end));
        }
        if progress {
            self.feed.poke();
        }
        Ok(job)
    }

    /// Settles many attempts in one store call; each entry is fenced on its own.
    ///
    /// # Errors
    /// The store's error for the whole call, which then kept nothing of the batch; refusals
    /// (`LeaseLost`, `NotFound`, ...) are in the list, per entry.
    ///
    /// A completion whose result's JSON is longer than `max_result_bytes` is not kept: the
    /// job fails for good instead (the same handler would produce the same result), with
    /// an error naming both sizes, and its entry answers [`StoreError::ResultTooLarge`].
    pub async fn settle_many(
        &self,
        settlements: Vec<Settlement>,
    ) -> Result<Vec<Result<Job, StoreError>>, StoreError> {
        let (settlements, too_large) = self.screen_results(settlements);
        let params = self.settle_params(settlements);
        let engine = self.me()?;
        // The store call and its announcements finish together even when the caller goes.
        detached(async move {
            let out = engine
                .metrics
                .timed("job_settle_many", engine.store.job_settle_many(params))
                .await?;
            Ok(engine.settled(out, too_large))
        })
        .await
    }

    /// This engine as an `Arc`, to move into a detached task. It lives as long as any
    /// caller holds it, so this fails only while it is being dropped.
    pub(crate) fn me(&self) -> Result<Arc<Engine>, StoreError> {
        self.me
            .upgrade()
            .ok_or_else(|| StoreError::Unavailable("the engine is shutting down".into()))
    }

    /// A worker's whole cycle in one call and one store transaction: settles what it
    /// finished, as [`settle_many`](Self::settle_many) does, then claims as
    /// [`claim`](Self::claim) does, so a worker that keeps jobs in flight needs one round
    /// trip per cycle. When the first claim finds nothing and the request may wait, it
    /// waits as a plain claim does; the settlements are kept by then.
    ///
    /// # Errors
    /// The store's error; when the first transaction failed, nothing of it was kept.
    pub async fn settle_and_claim(
        &self,
        settlements: Vec<Settlement>,
        req: ClaimRequest,
    ) -> Result<(Vec<Result<Job, StoreError>>, Vec<ClaimedJob>), StoreError> {
        if settlements.is_empty() {
            return Ok((Vec::new(), self.claim(req).await?));
        }
        self.note_worker(&req);
        self.cycle_waiting(settlements, req).await
    }

    /// Settlements whose result is too large become failures of their job; the second
    /// list says, per entry, which (and the refusal its caller hears).
    pub(crate) fn screen_results(
        &self,
        settlements: Vec<Settlement>,
    ) -> (Vec<Settlement>, Vec<Option<StoreError>>) {
        let max = self.config.max_result_bytes;
        let mut too_large: Vec<Option<StoreError>> = Vec::with_capacity(settlements.len());
        let settlements = settlements
            .into_iter()
            .map(|s| match oversized_result(&s, max) {
                Some((refusal, failure)) => {
                    too_large.push(Some(refusal));
                    failure
                }
                None => {
                    too_large.push(None);
                    s
                }
            })
            .collect();
        (settlements, too_large)
    }

    fn settle_params(&self, settlements: Vec<Settlement>) -> JobSettleManyParams {
        JobSettleManyParams {
            settlements,
            retry_policy: self.config.retry_policy,
        }
    }

    /// Counts and announces what a settle call changed, and answers each entry.
    pub(crate) fn settled(
        &self,
        out: Vec<Result<Settled, StoreError>>,
        too_large: Vec<Option<StoreError>>,
    ) -> Vec<Result<Job, StoreError>> {
        for settled in out.iter().flatten() {
            // A repeat (its first answer was lost) changed nothing: counting it again would
            // count one attempt twice, in the totals and in the run-time histogram.
            if !settled.repeat {
                self.metrics.settled(&settled.job);
            }
            self.publish(&settled.job);
        }
        out.into_iter()
            .zip(too_large)
            .map(|(r, refusal)| match (r, refusal) {
                // The job failed as it should; the caller hears why its result went.
                (Ok(_), Some(refusal)) => Err(refusal),
                (r, _) => r.map(|settled| settled.job),
            })
            .collect()
    }

    /// Settles one attempt.
    ///
    /// # Errors
    /// `NotFound`, `LeaseLost`, or the store's error.
    pub async fn settle(&self, settlement: Settlement) -> Result<Job, StoreError> {
        self.settle_many(vec![settlement])
            .await?
            .pop()
            .unwrap_or_else(|| {
                Err(StoreError::Corrupt(
                    "the store answered no settlement".into(),
                ))
            })
    }

    /// Cancels a job that has not finished.
    ///
    /// # Errors
    /// `NotFound`, `WrongState`, or the store's error.
    pub async fn cancel(&self, id: JobId) -> Result<Job, StoreError> {
        let job = self
            .metrics
            .timed("job_cancel", self.store.job_cancel(id))
            .await?;
        self.metrics.cancelled(&job);
        self.publish(&job);
        Ok(job)
    }

    /// Runs a dead, cancelled or waiting job again now.
    ///
    /// # Errors
    /// `NotFound`, `WrongState`, or the store's error.
    pub async fn retry(&self, id: JobId) -> Result<Job, StoreError> {
        let job = self
            .metrics
            .timed("job_retry", self.store.job_retry(id))
            .await?;
        self.metrics.retried(&job);
        self.publish(&job);
        Ok(job)
    }

    /// A job; with `wait`, waits until it reaches a final state or the wait ends.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    ///
    /// A waiter costs a registry entry and a parked future: it reads the store once at
    /// the start, once per wake-up (this node ending the job, or the event tail seeing it
    /// end on another node) and once at the deadline.
    pub async fn job(&self, id: JobId, wait: Duration) -> Result<Job, StoreError> {
        if wait.is_zero() {
            return self.metrics.timed("job_get", self.store.job_get(id)).await;
        }
        let deadline = Instant::now() + wait;
        let waiter = self.waiters.register(id);
        // The tail wakes waiters of jobs that end on other nodes: it must follow the log
        // from before the first read below.
        self.feed.follow(self).await?;
        loop {
            let woken = waiter.notify().notified();
            tokio::pin!(woken);
            // Registered before the read: an end between read and wait is not lost.
            woken.as_mut().enable();
            let job = self.store.job_get(id).await?;
            if job.state.is_final() || Instant::now() >= deadline || self.shutdown.is_cancelled() {
                return Ok(job);
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    /// Jobs someone waits on in this process right now (`GET /v1/jobs/{id}?wait=`).
    pub fn jobs_waited_on(&self) -> usize {
        self.waiters.jobs_waited_on()
    }

    /// A page of jobs, newest first.
    ///
    /// # Errors
    /// The store's error.
    pub async fn list(&self, params: JobListParams) -> Result<Vec<Job>, StoreError> {
        self.store.job_list(params).await
    }

    /// A job's attempts.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn attempts(&self, id: JobId) -> Result<Vec<Attempt>, StoreError> {
        self.store.job_attempt_list(id).await
    }

    /// Makes selected dead jobs available again.
    ///
    /// # Errors
    /// The store's error.
    pub async fn dead_requeue(&self, selection: DeadSelection) -> Result<u64, StoreError> {
        let n = self
            .metrics
            .timed("dead_requeue_many", self.store.dead_requeue_many(selection))
            .await?;
        self.metrics.dead_requeued(n);
        if n > 0 {
            self.jobs_changed();
            self.waker.wake_all();
        }
        Ok(n)
    }

    /// Marks the node as leaving before it stops: readiness fails from now on, while
    /// everything else keeps working, so the load balancer takes it out of rotation before
    /// its listener closes (a request sent meanwhile is still answered, not refused).
    pub fn begin_drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True once [`Engine::begin_drain`] or [`Engine::shutdown`] was called.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed) || self.shutdown.is_cancelled()
    }

    /// Stops waiting claims and waits; maintenance services stop on their own token.
    pub fn shutdown(&self) {
        self.begin_drain();
        self.shutdown.cancel();
    }

    /// Closes the store's connections, the last step of a clean stop: after every service
    /// and request has ended, since the engine's store is not used again.
    pub async fn close_store(&self) {
        self.store.close().await;
    }
}

/// For a completion whose result is longer than `max` bytes of JSON: the refusal its
/// caller hears and the settlement that fails the job for good in its place.
fn oversized_result(s: &Settlement, max: usize) -> Option<(StoreError, Settlement)> {
    let Settlement::Complete {
        id,
        lease_token,
        result: Some(result),
        report,
        ..
    } = s
    else {
        return None;
    };
    let bytes = serde_json::to_vec(result).map_or(0, |t| t.len());
    if bytes <= max {
        return None;
    }
    let refusal = StoreError::ResultTooLarge {
        bytes: bytes as u64,
        max: max as u64,
    };
    let failure = Settlement::Fail {
        id: *id,
        lease_token: *lease_token,
        error: refusal.to_string(),
        retry_in: None,
        dead: true,
        report: report.clone(),
    };
    Some((refusal, failure))
}

/// Runs `work` in a task of its own, so that it completes even when the caller stops
/// waiting; a caller that is gone drops the answer there.
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (answer, heard) = oneshot::channel();
    let task = tokio::spawn(async move {
        let _ = answer.send(work.await);
    });
    match heard.await {
        Ok(outcome) => outcome,
        Err(_) => Err(unanswered(task.await)),
    }
}

/// Why a detached task ended without an answer. A panic is a bug that asking again would
/// hit again: `Internal` (500), not `Unavailable` (503, "retry"). Only a task the runtime
/// cancelled (it is shutting down) is a reason to try again elsewhere.
fn unanswered(end: Result<(), JoinError>) -> StoreError {
    match end {
        Err(e) if e.is_cancelled() => {
            StoreError::Unavailable("the store task was cancelled: shutting down".into())
        }
        Err(e) => StoreError::Internal(format!("the store task panicked: {e}")),
        Ok(()) => StoreError::Internal("the store task ended without an answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use errand_store::StoreError;

    use super::detached;

    #[tokio::test]
    async fn a_detached_task_that_answers_is_heard() {
        assert_eq!(detached(async { Ok(7) }).await, Ok(7));
        assert_eq!(
            detached(async { Err::<(), _>(StoreError::Invalid("no".into())) }).await,
            Err(StoreError::Invalid("no".into()))
        );
    }

    #[tokio::test]
    async fn a_detached_task_that_panics_is_internal_not_a_retry() {
        let outcome = detached(async {
            if true {
                panic!("a bug in the store");
            }
            Ok(())
        })
        .await;
        assert!(
            matches!(&outcome, Err(StoreError::Internal(m)) if m.contains("a bug in the store")),
            "{outcome:?}"
        );
    }
}
