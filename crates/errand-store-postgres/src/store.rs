//! [`PgStore`]: the pool, the listener, and each [`Store`] method routed to its query.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use errand_core::schedule_spec::Schedule;
use errand_core::{
    Attempt, InstanceRecord, Job, JobId, JobState, LogEntry, Millis, NodeId, NodeInfo, QueueInfo,
    QueueName, ScheduleName,
};
use errand_core::{
    ClaimedDelivery, Delivery, EventId, NewSubscription, Subscription, SubscriptionId,
    SubscriptionPatch,
};
use errand_store::{
    DeadSelection, DueWork, InsertedAndClaimed, InsertedJob, JobClaimTogetherParams,
    JobHeartbeatParams, JobInsertManyParams, JobInsertMarkedParams, JobListParams,
    JobLogAppendParams, JobLogListParams, JobPruneParams, JobReleaseManyParams, JobRescueParams,
    JobSettleManyParams, LeaseAcquireParams, NodeHeartbeatParams, QueueUpsertParams, RestoredJob,
    ScheduleFireOutcome, ScheduleFireParams, SchedulePutParams, ScheduleSlotListParams,
    ScheduleSlotPruneParams, ScheduleSlotRecord, SchemaVersion, Settled, SettledAndClaimedTogether,
    Store, StoreError, StoreOrigin,
};
use errand_store::{
    DeliveryClaimParams, DeliveryFanoutParams, DeliveryListParams, DeliverySettleParams,
    ScheduleChange,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::batch_store;
use crate::connect_error::{self, ConnectError, PgTarget};
use crate::fault::{QResult, RowExt};
use crate::goodbye::{Connections, GoodbyeConnect};
use crate::job_row::millis;
use crate::notifier::Notifier;
use crate::peers::Peers;
use crate::transition::EventRows;
use crate::{audit, token};
use crate::{
    definition_switch, delivery_queue, event_log, explain, instance, job_log, job_read, job_settle,
    job_write, limit, listener, maintenance, mark, named_lease, node, pipelined_tx, planner_stats,
    queue, restore, schedule, schema, session, subscription, wake, worker, workflow_store,
};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user@host:port/db`.
    pub url: String,
    /// Schema holding errand's tables; created when missing. Several errand deployments
    /// (or tests) can share one database with different schemas.
    pub schema: String,
    /// Connections per node. Each in-flight request holds one only while its statement
    /// runs, so a few serve thousands of waiting workers; 16 keeps six nodes (plus their
    /// LISTEN connections) under PostgreSQL's default `max_connections` of 100.
    pub pool_size: usize,
    /// How long a request waits for a connection before answering `503`.
    pub connect_timeout: Duration,
    /// Open only a store that is there: a schema without errand's tables is refused
    /// ([`ConnectError::NoStore`]) before anything is created in it, for commands that read
    /// or change what a store holds (an export, listing tokens).
    pub existing_only: bool,
}

impl PgOptions {
    /// Options for `url` with the default schema `errand`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            schema: "errand".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            existing_only: false,
        }
    }
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    wakeups: broadcast::Sender<QueueName>,
    notifier: Notifier,
    /// The LISTEN connection's task: a clean stop lets it hang up, a drop aborts it.
    listener_task: tokio::task::JoinHandle<()>,
    /// The notifier's task, which a clean stop ends at once (it keeps no connection).
    notifier_task: tokio::task::JoinHandle<()>,
    /// Every connection's task, so a clean stop can wait for their goodbyes.
    connections: Connections,
    /// Ends the listener, on a clean stop.
    stop: CancellationToken,
    origin: StoreOrigin,
    target: PgTarget,
    /// Reclaims the count rows the folds delete.
    count_vacuum: queue::CountVacuum,
    /// Has `jobs` analyzed as it doubles in size.
    growth_watch: planner_stats::GrowthWatch,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener_task.abort();
        self.notifier_task.abort();
    }
}

/// How long a clean stop waits for the store's connections to end.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// Events buffered for a slow wake-up subscriber; a lagging one just wakes everything.
const WAKEUP_BUFFER: usize = 1024;

fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl PgStore {
    /// Connects, runs migrations under an advisory lock, and starts the wake-up listener.
    ///
    /// # Errors
    /// [`ConnectError`]: a bad URL or schema name, TLS settings that cannot be honoured
    /// (see [`crate::pg_config`]), a server that
    /// cannot be reached (naming host, port, database, user and the cause), or a migration
    /// that failed.
    pub async fn connect(options: &PgOptions) -> Result<Self, ConnectError> {
        if !valid_schema(&options.schema) {
            return Err(ConnectError::BadSchema(options.schema.clone()));
        }
        let (mut config, tls) = crate::tls::pg_config(&options.url)?;
        let target = PgTarget::of(&config);
        config.connect_timeout(options.connect_timeout);
        let (mut admin, conn) =
            config
                .connect(tls.clone())
                .await
                .map_err(|e| ConnectError::Connect {
                    cause: connect_error::cause(&e, &target),
                    target: target.clone(),
                })?;
        let admin_conn = tokio::spawn(conn);
        if options.existing_only {
            let present = schema::present(&admin, &options.schema).await;
            if !matches!(present, Ok(true)) {
                // Goodbye on the way out, as on every other.
                drop(admin);
                let _ = admin_conn.await;
                return Err(match present {
                    Err(e) => ConnectError::Prepare {
                        target,
                        schema: options.schema.clone(),
                        source: Box::new(e.into()),
                    },
                    Ok(_) => ConnectError::NoStore {
                        target,
                        schema: options.schema.clone(),
                    },
                });
            }
        }
        let origin = schema::migrate(&mut admin, &options.schema)
            .await
            .map_err(|e| ConnectError::Prepare {
                target: target.clone(),
                schema: options.schema.clone(),
                source: Box::new(e.into()),
            })?;
        drop(admin);
        let _ = admin_conn.await;

        // JIT off: every statement here is a short indexed one, but the planner's estimate
        // for the queue listing's per-priority hops passes `jit_above_cost`, and compiling
        // took 400-800 ms of a read that runs in under a millisecond without it (measured).
        config.options(format!("-c search_path={} -c jit=off", options.schema));
        let connections = Connections::default();
        let manager = Manager::from_connect(
            config.clone(),
            GoodbyeConnect {
                tls: tls.clone(),
                connections: connections.clone(),
            },
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| ConnectError::Connect {
                target: target.clone(),
                cause: e.to_string(),
            })?;
        let (wakeups, _) = broadcast::channel(WAKEUP_BUFFER);
        // Names this store instance in its notifications, so its own echo can be ignored.
        let me = uuid::Uuid::new_v4().simple().to_string();
        let peers = std::sync::Arc::new(Peers::default());
        let stop = CancellationToken::new();
        // On the connections' tracker: a clean stop waits for the listener to hang up,
        // even one that is connecting just then.
        let listener = connections.spawn(listener::run(
            config,
            tls,
            listener::Listening {
                schema: options.schema.clone(),
                me: me.clone(),
                tx: wakeups.clone(),
                peers: peers.clone(),
                stop: stop.clone(),
                connections: connections.clone(),
            },
        ));
        let (notifier, notifier_task) = Notifier::start(pool.clone(), &options.schema, &me, peers);
        Ok(Self {
            pool,
            wakeups,
            notifier,
            listener_task: listener,
            notifier_task,
            connections,
            stop,
            origin,
            target,
            count_vacuum: queue::CountVacuum::default(),
            growth_watch: planner_stats::GrowthWatch::default(),
        })
    }

    /// The server this store is connected to (no password).
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// Whether connecting found errand's schema in place or created it.
    pub fn origin(&self) -> StoreOrigin {
        self.origin
    }

    /// A pooled connection (crate-wide for tests that look at one connection's state).
    pub(crate) async fn client(&self) -> QResult<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Wakes the claimers of queues a flow made ready, here and on every other node.
    fn wake_flows(&self, queues: &[String]) {
        for q in queues {
            self.notifier.notify(q);
            if let Ok(name) = QueueName::parse(q) {
                // No receiver is fine: nobody waits right now.
                let _ = self.wakeups.send(name);
            }
        }
    }

    /// Tells other nodes about every job in `jobs` that is ready to claim, and about the
    /// reply each job that ended left in its `reply_to` queue.
    fn announce<'a>(&self, jobs: impl IntoIterator<Item = &'a Job>) {
        let mut last: Option<&QueueName> = None;
        for job in jobs {
            if job.state == JobState::Available && last != Some(&job.queue) {
                self.notifier.notify(job.queue.as_str());
                last = Some(&job.queue);
            }
            if let (true, Some(reply_to)) = (job.state.is_final(), &job.reply_to) {
                self.notifier.notify(reply_to.as_str());
            }
        }
    }
}

/// Runs `$body` with `$tx` bound to a pooled connection inside a transaction, committing
/// when it returns `Ok` and rolling back on `Err` ([`pipelined_tx`]: `BEGIN` goes with the
/// first statement, the transaction's events with its `COMMIT`).
/// Queues a flow made ready in the transaction are woken after commit ([`wake`]).
macro_rules! in_tx {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let run = async {
            let pipelined = pipelined_tx::PipelinedTx::new($self.client().await?);
            let $tx = pipelined.client();
            pipelined.run(async { QResult::Ok($body) }).await
        };
        let (out, woken) = wake::collecting(run).await;
        if out.is_ok() {
            $self.wake_flows(&woken);
        }
        out.map_err(StoreError::from)
    }};
}

/// Runs `$body` with `$c` bound to a pooled connection (autocommit).
macro_rules! on_conn {
    ($self:ident, |$c:ident| $body:expr) => {{
        let run = async {
            let $c = $self.client().await?;
            QResult::Ok($body)
        };
        let (out, woken) = wake::collecting(run).await;
        if out.is_ok() {
            $self.wake_flows(&woken);
        }
        out.map_err(StoreError::from)
    }};
}

#[async_trait]
impl Store for PgStore {
    async fn queue_update(
        &self,
        name: &QueueName,
        patch: errand_core::queue::QueueSettingsPatch,
    ) -> Result<QueueInfo, StoreError> {
        let info = in_tx!(self, |tx| queue::update(tx, name, &patch).await?)?;
        // A raised limit or a resume may let jobs start.
        self.notifier.notify(name.as_str());
        Ok(info)
    }

    async fn limit_put(
        &self,
        limit: errand_core::throttle::Limit,
    ) -> Result<errand_core::throttle::LimitInfo, StoreError> {
        let info = in_tx!(self, |tx| limit::put(tx, &limit).await?)?;
        Ok(info)
    }

    async fn limit_get(
        &self,
        scope: errand_core::throttle::LimitScope,
        name: &str,
    ) -> Result<errand_core::throttle::LimitInfo, StoreError> {
        on_conn!(self, |c| limit::get(&c, scope, name).await?)
    }

    async fn limit_list(&self) -> Result<Vec<errand_core::throttle::LimitInfo>, StoreError> {
        on_conn!(self, |c| limit::list(&c).await?)
    }

    async fn limit_delete(
        &self,
        scope: errand_core::throttle::LimitScope,
        name: &str,
    ) -> Result<(), StoreError> {
        on_conn!(self, |c| limit::delete(&c, scope, name).await?)
    }

    async fn session_get(&self, key: &str) -> Result<errand_core::session::Session, StoreError> {
        on_conn!(self, |c| session::get(&c, key).await?)
    }

    async fn session_list(
        &self,
        params: errand_store::SessionListParams,
    ) -> Result<Vec<errand_core::session::Session>, StoreError> {
        on_conn!(self, |c| session::list(&c, &params).await?)
    }

    async fn session_state_put(
        &self,
        params: errand_store::SessionStatePutParams,
    ) -> Result<errand_core::session::Session, StoreError> {
        in_tx!(self, |tx| session::state_put(tx, &params).await?)
    }

    async fn session_unblock(
        &self,
        key: &str,
    ) -> Result<errand_core::session::Session, StoreError> {
        let s = in_tx!(self, |tx| session::unblock(tx, key).await?)?;
        // The next job may be ready; its queue is not known here, so wake every claimer.
        if let Some(head) = s.head {
            if let Ok(job) = self.job_get(head).await {
                self.announce([&job]);
            }
        }
        Ok(s)
    }

    async fn job_explain_facts(
        &self,
        id: errand_core::JobId,
    ) -> Result<errand_core::explain::ExplainFacts, StoreError> {
        in_tx!(self, |tx| explain::facts(tx, id).await?)
    }

    async fn worker_seen_many(
        &self,
        seen: Vec<errand_core::worker::WorkerSeen>,
    ) -> Result<(), StoreError> {
        on_conn!(self, |c| worker::seen_many(&c, &seen).await?)
    }

    async fn worker_list(&self) -> Result<Vec<errand_core::worker::WorkerInfo>, StoreError> {
        on_conn!(self, |c| worker::list(&c, None).await?)
    }

    async fn worker_prune(&self, older_than: std::time::Duration) -> Result<u64, StoreError> {
        on_conn!(self, |c| worker::prune(&c, older_than).await?)
    }

    async fn workflow_create(
        &self,
        params: errand_store::WorkflowCreateParams,
    ) -> Result<(errand_core::workflow::Workflow, bool), StoreError> {
        in_tx!(self, |tx| workflow_store::create(tx, params).await?)
    }

    async fn workflow_get(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError> {
        in_tx!(self, |tx| workflow_store::get(tx, id).await?)
    }

    async fn workflow_list(
        &self,
        params: errand_store::WorkflowListParams,
    ) -> Result<Vec<errand_core::workflow::WorkflowSummary>, StoreError> {
        on_conn!(self, |c| workflow_store::list(&c, &params).await?)
    }

    async fn workflow_cancel(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError> {
        in_tx!(self, |tx| workflow_store::cancel(tx, id).await?)
    }

    async fn workflow_retry(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError> {
        in_tx!(self, |tx| workflow_store::retry(tx, id).await?)
    }

    async fn workflow_supervise(
        &self,
        limit: u32,
    ) -> Result<Vec<errand_store::SupervisedStep>, StoreError> {
        in_tx!(self, |tx| workflow_store::supervise(tx, limit).await?)
    }

    async fn workflow_template_put(
        &self,
        name: &str,
        spec: errand_core::workflow::WorkflowSpec,
    ) -> Result<(), StoreError> {
        on_conn!(self, |c| workflow_store::template_put(&c, name, &spec)
            .await?)
    }

    async fn workflow_template_get(
        &self,
        name: &str,
    ) -> Result<errand_core::workflow::WorkflowSpec, StoreError> {
        on_conn!(self, |c| workflow_store::template_get(&c, name).await?)
    }

    async fn workflow_template_list(
        &self,
    ) -> Result<Vec<(String, errand_core::workflow::WorkflowSpec)>, StoreError> {
        on_conn!(self, |c| workflow_store::template_list(&c).await?)
    }

    async fn workflow_template_delete(&self, name: &str) -> Result<(), StoreError> {
        on_conn!(self, |c| workflow_store::template_delete(&c, name).await?)
    }

    async fn batch_create(
        &self,
        batch: errand_core::batch::NewBatch,
        params: JobInsertManyParams,
    ) -> Result<errand_store::BatchWrite, StoreError> {
        let window = params.idempotency_window;
        let out = in_tx!(self, |tx| {
            let mut events = EventRows::default();
            let out = batch_store::create(tx, &batch, params.jobs, window, &mut events).await?;
            events.append(tx).await?;
            out
        })?;
        self.announce(out.jobs.iter().filter(|r| r.inserted).map(|r| &r.job));
        Ok(out)
    }

    async fn batch_add(
        &self,
        id: errand_core::BatchId,
        params: JobInsertManyParams,
    ) -> Result<errand_store::BatchWrite, StoreError> {
        let window = params.idempotency_window;
        let out = in_tx!(self, |tx| {
            let mut events = EventRows::default();
            let out = batch_store::add(tx, id, params.jobs, window, &mut events).await?;
            events.append(tx).await?;
            out
        })?;
        self.announce(out.jobs.iter().filter(|r| r.inserted).map(|r| &r.job));
        Ok(out)
    }

    async fn batch_close(
        &self,
        id: errand_core::BatchId,
    ) -> Result<errand_core::batch::Batch, StoreError> {
        in_tx!(self, |tx| {
            let mut events = EventRows::default();
            let out = batch_store::close(tx, id, &mut events).await?;
            events.append(tx).await?;
            out
        })
    }

    async fn batch_get(
        &self,
        id: errand_core::BatchId,
    ) -> Result<errand_core::batch::Batch, StoreError> {
        on_conn!(self, |c| batch_store::get(&c, id).await?)
    }

    async fn batch_list(
        &self,
        params: errand_store::BatchListParams,
    ) -> Result<Vec<errand_core::batch::Batch>, StoreError> {
        on_conn!(self, |c| batch_store::list(&c, &params).await?)
    }

    /// Reachable is not enough: a standby in recovery, or a database or role with
    /// `default_transaction_read_only`, answers queries and refuses every job.
    /// `transaction_read_only` is on in both cases.
    async fn schema_version(&self) -> Result<SchemaVersion, StoreError> {
        on_conn!(self, |c| crate::schema::version(&c).await?)
    }

    async fn close(&self) {
        // The notifier holds a pooled connection only while it sends; the listener hangs
        // up its own. Then the idle pooled connections go, each saying goodbye.
        self.stop.cancel();
        self.notifier_task.abort();
        self.pool.close();
        if !self.connections.close(CLOSE_WITHIN).await {
            tracing::warn!(within = ?CLOSE_WITHIN, "PostgreSQL connections had not ended by the end of a clean stop: they end with the process, without a goodbye");
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let read_only = on_conn!(self, |c| {
            let row = c
                .query_one("SELECT current_setting('transaction_read_only')", &[])
                .await?;
            let read_only = row.column::<String>(0)?;
            if read_only != "off" {
                // A session opened while the database refused writes keeps refusing them
                // after it takes writes again (a failover, `default_transaction_read_only`
                // reset): drop it instead of returning it to the pool, so the next ping
                // asks on a new session rather than staying unready for good.
                drop(deadpool_postgres::Object::take(c));
            }
            read_only
        })?;
        if read_only == "off" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "PostgreSQL takes no writes on this connection (transaction_read_only = \
                 {read_only}): a standby in recovery, or default_transaction_read_only set on \
                 the database or role"
            )))
        }
    }

    async fn job_insert_many(
        &self,
        params: JobInsertManyParams,
    ) -> Result<Vec<InsertedJob>, StoreError> {
        let window = params.idempotency_window;
        let out = in_tx!(self, |tx| job_write::insert_many(tx, params.jobs, window)
            .await?)?;
        self.announce(out.iter().filter(|r| r.inserted).map(|r| &r.job));
        Ok(out)
    }

    async fn job_get(&self, id: JobId) -> Result<Job, StoreError> {
        on_conn!(self, |c| job_read::get(&c, id).await?)
    }

    async fn job_list(&self, params: JobListParams) -> Result<Vec<Job>, StoreError> {
        on_conn!(self, |c| job_read::list(&c, &params).await?)
    }

    async fn job_release_many(&self, params: JobReleaseManyParams) -> Result<Vec<Job>, StoreError> {
        let released = on_conn!(self, |c| job_write::release_many(&c, &params).await?)?;
        self.announce(&released);
        Ok(released)
    }

    async fn job_heartbeat(&self, params: JobHeartbeatParams) -> Result<Job, StoreError> {
        if params.progress.is_some() {
            in_tx!(self, |tx| job_write::heartbeat(tx, &params).await?)
        } else {
            on_conn!(self, |c| job_write::heartbeat(&c, &params).await?)
        }
    }

    async fn job_settle_many(
        &self,
        params: JobSettleManyParams,
    ) -> Result<Vec<Result<Settled, StoreError>>, StoreError> {
        let out = in_tx!(self, |tx| job_settle::settle_many(
            tx,
            &params.settlements,
            &params.retry_policy
        )
        .await?)?;
        self.announce(out.iter().flatten().map(|s| &s.job));
        Ok(out)
    }

    async fn job_settle_and_claim_together(
        &self,
        settle: JobSettleManyParams,
        claims: JobClaimTogetherParams,
    ) -> Result<SettledAndClaimedTogether, StoreError> {
        let out = in_tx!(self, |tx| {
            let settled = if settle.settlements.is_empty() {
                Vec::new()
            } else {
                job_settle::settle_many(tx, &settle.settlements, &settle.retry_policy).await?
            };
            let claimed = job_write::claim(tx, &claims).await?;
            SettledAndClaimedTogether { settled, claimed }
        })?;
        self.announce(out.settled.iter().flatten().map(|s| &s.job));
        Ok(out)
    }

    async fn job_insert_and_claim(
        &self,
        insert: JobInsertManyParams,
        claims: JobClaimTogetherParams,
    ) -> Result<InsertedAndClaimed, StoreError> {
        let window = insert.idempotency_window;
        let out = in_tx!(self, |tx| {
            let inserted = job_write::insert_many(tx, insert.jobs, window).await?;
            let claimed = job_write::claim(tx, &claims).await?;
            InsertedAndClaimed { inserted, claimed }
        })?;
        // Other nodes hear of the new jobs these takers did not take (they may have taken
        // older ones), and of the rest as `job_insert_many` tells them.
        let taken: std::collections::HashSet<JobId> =
            out.claimed.iter().flatten().map(|c| c.job.id).collect();
        self.announce(
            out.inserted
                .iter()
                .filter(|r| r.inserted && !taken.contains(&r.job.id))
                .map(|r| &r.job),
        );
        Ok(out)
    }

    async fn job_cancel(&self, id: JobId) -> Result<Job, StoreError> {
        let job = in_tx!(self, |tx| job_settle::cancel(tx, id).await?)?;
        self.announce([&job]);
        Ok(job)
    }

    async fn job_retry(&self, id: JobId) -> Result<Job, StoreError> {
        let job = in_tx!(self, |tx| job_settle::retry(tx, id).await?)?;
        self.announce([&job]);
        Ok(job)
    }

    async fn job_attempt_list(&self, id: JobId) -> Result<Vec<Attempt>, StoreError> {
        on_conn!(self, |c| job_read::attempts(&c, id).await?)
    }

    async fn job_rescue_expired(&self, params: JobRescueParams) -> Result<Vec<Job>, StoreError> {
        let jobs = in_tx!(self, |tx| maintenance::rescue_expired(tx, &params).await?)?;
        self.announce(&jobs);
        Ok(jobs)
    }

    async fn due_in(&self, work: DueWork) -> Result<Option<std::time::Duration>, StoreError> {
        on_conn!(self, |c| maintenance::due_in(&c, work).await?)
    }

    async fn job_promote_due(&self, limit: u32) -> Result<Vec<QueueName>, StoreError> {
        let run = async {
            let mut c = self.client().await?;
            maintenance::promote_due(&mut c, limit).await
        };
        let queues = run.await.map_err(StoreError::from)?;
        for q in &queues {
            self.notifier.notify(q.as_str());
        }
        Ok(queues)
    }

    async fn queue_counts_fold(&self) -> Result<u64, StoreError> {
        let folded = on_conn!(self, |c| queue::fold_counts(&c).await?)?;
        self.count_vacuum.folded(folded, &self.pool);
        // A fold follows this node's writes (or comes every half minute when idle): the
        // jobs table may have grown past its statistics since the last.
        self.growth_watch.look(&self.pool);
        Ok(folded)
    }

    async fn queue_list(&self) -> Result<Vec<QueueInfo>, StoreError> {
        on_conn!(self, |c| queue::list(&c, None).await?)
    }

    async fn queue_get(&self, name: &QueueName) -> Result<QueueInfo, StoreError> {
        on_conn!(self, |c| queue::list(&c, Some(name))
            .await?
            .pop()
            .ok_or_else(|| StoreError::queue_not_found(name))?)
    }

    async fn queue_pause(&self, name: &QueueName) -> Result<QueueInfo, StoreError> {
        on_conn!(self, |c| queue::set_paused(&c, name, true).await?)
    }

    async fn queue_resume(&self, name: &QueueName) -> Result<QueueInfo, StoreError> {
        let info = on_conn!(self, |c| queue::set_paused(&c, name, false).await?)?;
        self.notifier.notify(name.as_str());
        Ok(info)
    }

    async fn dead_requeue_many(&self, selection: DeadSelection) -> Result<u64, StoreError> {
        let jobs = in_tx!(self, |tx| queue::dead_requeue(tx, &selection).await?)?;
        self.announce(&jobs);
        Ok(jobs.len() as u64)
    }

    async fn dead_purge_many(&self, selection: DeadSelection) -> Result<u64, StoreError> {
        let (n, queues) = in_tx!(self, |tx| queue::dead_purge(tx, &selection).await?)?;
        // A session that moved on has a job ready.
        for q in &queues {
            self.notifier.notify(q);
        }
        Ok(n)
    }

    async fn job_prune(&self, params: JobPruneParams) -> Result<u64, StoreError> {
        let (n, queues) = in_tx!(self, |tx| maintenance::prune(tx, &params).await?)?;
        for q in &queues {
            self.notifier.notify(q);
        }
        Ok(n)
    }

    async fn job_restore_many(&self, jobs: Vec<RestoredJob>) -> Result<u64, StoreError> {
        let n = in_tx!(self, |tx| restore::restore_many(tx, &jobs).await?)?;
        self.announce(jobs.iter().map(|r| &r.job));
        Ok(n)
    }

    async fn queue_upsert(&self, params: QueueUpsertParams) -> Result<(), StoreError> {
        on_conn!(self, |c| restore::queue_upsert(
            &c,
            params.name.as_str(),
            params.paused
        )
        .await?)
    }

    async fn clock_now(&self) -> Result<Millis, StoreError> {
        on_conn!(self, |c| schedule::clock_now(&c).await?)
    }

    async fn schedule_put(&self, params: SchedulePutParams) -> Result<ScheduleChange, StoreError> {
        let change = in_tx!(self, |tx| schedule::put(tx, &params).await?)?;
        self.announce(&change.taken_back);
        Ok(change)
    }

    async fn schedule_get(&self, name: &ScheduleName) -> Result<Schedule, StoreError> {
        on_conn!(self, |c| schedule::get(&c, name.as_str()).await?)
    }

    async fn schedule_list(&self) -> Result<Vec<Schedule>, StoreError> {
        on_conn!(self, |c| schedule::list(&c).await?)
    }

    async fn schedule_delete(&self, name: &ScheduleName) -> Result<Vec<Job>, StoreError> {
        let taken_back = in_tx!(self, |tx| schedule::delete(tx, name.as_str()).await?)?;
        self.announce(&taken_back);
        Ok(taken_back)
    }

    async fn schedule_pause(&self, name: &ScheduleName) -> Result<ScheduleChange, StoreError> {
        let change = in_tx!(self, |tx| schedule::set_paused(tx, name.as_str(), true)
            .await?)?;
        self.announce(&change.taken_back);
        Ok(change)
    }

    async fn schedule_resume(&self, name: &ScheduleName) -> Result<Schedule, StoreError> {
        on_conn!(self, |c| schedule::set_paused(&c, name.as_str(), false)
            .await?
            .schedule)
    }

    async fn schedule_due(
        &self,
        limit: u32,
        ahead: std::time::Duration,
    ) -> Result<(Millis, Vec<Schedule>), StoreError> {
        let ahead = errand_store::lead_millis(ahead);
        on_conn!(self, |c| schedule::due(&c, limit, ahead).await?)
    }

    async fn schedule_fire_many(
        &self,
        params: Vec<ScheduleFireParams>,
    ) -> Result<Vec<ScheduleFireOutcome>, StoreError> {
        let outcomes = in_tx!(self, |tx| schedule::fire_many(tx, params).await?)?;
        for outcome in &outcomes {
            if let ScheduleFireOutcome::Fired { jobs, cancelled } = outcome {
                self.announce(cancelled.as_deref().into_iter().chain(jobs));
            }
        }
        Ok(outcomes)
    }

    async fn schedule_slot_list(
        &self,
        params: ScheduleSlotListParams,
    ) -> Result<Vec<ScheduleSlotRecord>, StoreError> {
        on_conn!(self, |c| schedule::slot_list(&c, &params).await?)
    }

    async fn schedule_slot_restore_many(
        &self,
        slots: Vec<ScheduleSlotRecord>,
    ) -> Result<u64, StoreError> {
        on_conn!(self, |c| schedule::slot_restore_many(&c, &slots).await?)
    }

    async fn schedule_slot_prune(
        &self,
        params: ScheduleSlotPruneParams,
    ) -> Result<u64, StoreError> {
        on_conn!(self, |c| schedule::slot_prune(&c, &params).await?)
    }

    async fn node_heartbeat(&self, params: NodeHeartbeatParams) -> Result<(), StoreError> {
        on_conn!(self, |c| node::heartbeat(&c, &params).await?)
    }

    async fn node_stop(&self, id: NodeId) -> Result<(), StoreError> {
        on_conn!(self, |c| node::stop(&c, id).await?)
    }

    async fn node_list(
        &self,
        dead_after: Duration,
        forget_after: Duration,
    ) -> Result<Vec<NodeInfo>, StoreError> {
        on_conn!(self, |c| node::list(
            &c,
            millis(dead_after),
            millis(forget_after)
        )
        .await?)
    }

    async fn job_log_append(&self, params: JobLogAppendParams) -> Result<u64, StoreError> {
        in_tx!(self, |tx| job_log::append(tx, &params).await?)
    }

    async fn job_log_list(&self, params: JobLogListParams) -> Result<Vec<LogEntry>, StoreError> {
        on_conn!(self, |c| job_log::list(&c, &params).await?)
    }

    async fn job_log_prune(&self, older_than: Duration, limit: u32) -> Result<u64, StoreError> {
        on_conn!(self, |c| job_log::prune(&c, millis(older_than), limit)
            .await?)
    }

    async fn lease_acquire(&self, params: LeaseAcquireParams) -> Result<bool, StoreError> {
        on_conn!(self, |c| named_lease::acquire(&c, &params).await?)
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        on_conn!(self, |c| named_lease::release(&c, name, holder).await?)
    }

    async fn instance_put(&self, record: InstanceRecord) -> Result<(), StoreError> {
        on_conn!(self, |c| instance::put(&c, &record).await?)
    }

    async fn instance_list(
        &self,
        definition: Option<String>,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        on_conn!(self, |c| instance::list(&c, definition.as_deref()).await?)
    }

    async fn instance_delete(&self, node: NodeId, instance: uuid::Uuid) -> Result<(), StoreError> {
        on_conn!(self, |c| instance::delete(&c, node, instance).await?)
    }

    async fn instance_prune(&self, stale_after: Duration) -> Result<u64, StoreError> {
        on_conn!(self, |c| instance::prune(&c, millis(stale_after)).await?)
    }

    async fn definition_switch_put(&self, name: String, stopped: bool) -> Result<(), StoreError> {
        on_conn!(self, |c| definition_switch::put(&c, &name, stopped).await?)
    }

    async fn definition_switch_list(&self) -> Result<Vec<(String, bool)>, StoreError> {
        on_conn!(self, |c| definition_switch::list(&c).await?)
    }

    async fn job_insert_marked(
        &self,
        params: JobInsertMarkedParams,
    ) -> Result<Option<InsertedJob>, StoreError> {
        let JobInsertMarkedParams {
            job,
            scope,
            key,
            idempotency_window,
        } = params;
        let out = in_tx!(self, |tx| mark::insert_marked(
            tx,
            job,
            &scope,
            &key,
            idempotency_window
        )
        .await?)?;
        if let Some(r) = out.as_ref().filter(|r| r.inserted) {
            self.announce([&r.job]);
        }
        Ok(out)
    }

    async fn event_read(
        &self,
        after: Option<errand_core::EventId>,
        limit: u32,
    ) -> Result<errand_store::EventPage, StoreError> {
        on_conn!(self, |c| event_log::read(&c, after, limit).await?)
    }

    async fn event_head(&self) -> Result<Option<errand_core::EventId>, StoreError> {
        on_conn!(self, |c| event_log::head(&c).await?)
    }

    async fn event_prune(&self, params: errand_store::EventPruneParams) -> Result<u64, StoreError> {
        in_tx!(self, |tx| event_log::prune(tx, &params).await?)
    }

    async fn mark_list(&self, scope: &str) -> Result<Vec<String>, StoreError> {
        on_conn!(self, |c| mark::list(&c, scope).await?)
    }

    async fn mark_delete(&self, scope: &str, keys: Vec<String>) -> Result<u64, StoreError> {
        on_conn!(self, |c| mark::delete(&c, scope, &keys).await?)
    }

    async fn subscription_create(&self, new: NewSubscription) -> Result<Subscription, StoreError> {
        on_conn!(self, |c| subscription::create(&c, &new).await?)
    }

    async fn subscription_get(&self, id: SubscriptionId) -> Result<Subscription, StoreError> {
        on_conn!(self, |c| subscription::get(&c, id).await?)
    }

    async fn subscription_list(&self) -> Result<Vec<Subscription>, StoreError> {
        on_conn!(self, |c| subscription::list(&c).await?)
    }

    async fn subscription_update(
        &self,
        id: SubscriptionId,
        patch: SubscriptionPatch,
    ) -> Result<Subscription, StoreError> {
        in_tx!(self, |tx| subscription::update(tx, id, patch).await?)
    }

    async fn subscription_delete(&self, id: SubscriptionId) -> Result<(), StoreError> {
        on_conn!(self, |c| subscription::delete(&c, id).await?)
    }

    async fn token_create(
        &self,
        new: errand_core::NewToken,
    ) -> Result<errand_core::ApiToken, StoreError> {
        on_conn!(self, |c| token::create(&c, &new).await?)
    }

    async fn token_get(
        &self,
        id: errand_core::TokenId,
    ) -> Result<errand_core::StoredToken, StoreError> {
        on_conn!(self, |c| token::get(&c, id).await?)
    }

    async fn token_list(&self) -> Result<Vec<errand_core::ApiToken>, StoreError> {
        on_conn!(self, |c| token::list(&c).await?)
    }

    async fn token_revoke(
        &self,
        id: errand_core::TokenId,
    ) -> Result<errand_core::ApiToken, StoreError> {
        on_conn!(self, |c| token::revoke(&c, id).await?)
    }

    async fn token_end_sessions(
        &self,
        id: errand_core::TokenId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let at = errand_core::time::to_millis(at);
        on_conn!(self, |c| token::end_sessions(&c, id, at).await?)
    }

    async fn token_used(
        &self,
        id: errand_core::TokenId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let at = errand_core::time::to_millis(at);
        on_conn!(self, |c| token::used(&c, id, at).await?)
    }

    async fn audit_append(
        &self,
        entry: errand_core::NewAuditEntry,
    ) -> Result<errand_core::AuditEntry, StoreError> {
        on_conn!(self, |c| audit::append(&c, &entry).await?)
    }

    async fn audit_list(
        &self,
        params: errand_store::AuditListParams,
    ) -> Result<Vec<errand_core::AuditEntry>, StoreError> {
        on_conn!(self, |c| audit::list(&c, &params).await?)
    }

    async fn delivery_cursor(&self) -> Result<Option<EventId>, StoreError> {
        on_conn!(self, |c| delivery_queue::cursor(&c).await?)
    }

    async fn delivery_fanout(&self, params: DeliveryFanoutParams) -> Result<bool, StoreError> {
        in_tx!(self, |tx| delivery_queue::fanout(tx, &params).await?)
    }

    async fn delivery_claim(
        &self,
        params: DeliveryClaimParams,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        on_conn!(self, |c| delivery_queue::claim(&c, &params).await?)
    }

    async fn delivery_settle(&self, params: DeliverySettleParams) -> Result<Delivery, StoreError> {
        in_tx!(self, |tx| delivery_queue::settle(tx, &params).await?)
    }

    async fn delivery_list(&self, params: DeliveryListParams) -> Result<Vec<Delivery>, StoreError> {
        on_conn!(self, |c| delivery_queue::list(&c, &params).await?)
    }

    async fn delivery_prune(&self, older_than: Duration, limit: u32) -> Result<u64, StoreError> {
        on_conn!(self, |c| delivery_queue::prune(
            &c,
            millis(older_than),
            limit
        )
        .await?)
    }

    fn wakeups(&self) -> Option<broadcast::Receiver<QueueName>> {
        Some(self.wakeups.subscribe())
    }

    fn announce_ready(&self, queue: &QueueName) {
        self.notifier.notify(queue.as_str());
    }
}
