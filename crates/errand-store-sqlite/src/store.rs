//! [`SqliteStore`]: opening the file and routing each [`Store`] method to its query.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use errand_core::schedule_spec::Schedule;
use errand_core::time::Clock;
use errand_core::{
    Attempt, InstanceRecord, Job, JobId, LogEntry, Millis, NodeId, NodeInfo, QueueInfo, QueueName,
    ScheduleName,
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
use rusqlite::{Connection, OpenFlags, MAIN_DB};

use crate::fault::{db_error, QResult};
use crate::file_watch::FileWatch;
use crate::read_pool::ReadPool;
use crate::wake::Wakeups;
use crate::writer::Writer;
use crate::{audit, token};
use crate::{
    batch, claim, definition_switch, delivery_queue, event_log, explain, instance, job_log,
    job_read, job_row, job_settle, job_write, limit, maintenance, mark, named_lease, node, queue,
    restore, schedule, schema, session, subscription, worker, workflow,
};

/// Runs several reads on one snapshot: a read connection outside a transaction gives each
/// statement its own.
fn in_snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> QResult<T>) -> QResult<T> {
    conn.execute_batch("BEGIN")?;
    let out = f(conn);
    let end = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let out = out?;
    end?;
    Ok(out)
}

fn millis_of(d: std::time::Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How to open the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file; created with its directory when missing.
    pub path: PathBuf,
    /// Read connections. Reads are short, so a few serve many requests.
    pub readers: usize,
    /// Where the store's time comes from: the machine clock in production; a test may pass
    /// a [`Clock::adjustable`] and move it forward instead of sleeping past a lease.
    pub clock: Clock,
}

impl SqliteOptions {
    /// The store file inside a data directory.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join("errand.sqlite3"),
            readers: 4,
            clock: Clock::system(),
        }
    }
}

/// The embedded store. Cheap to clone; all clones share one writer thread.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: ReadPool,
    durability: Durability,
    origin: StoreOrigin,
    watch: Arc<FileWatch>,
    /// Every query's "now" (leases, run_at, retention, node liveness) comes from here, read
    /// when the query runs, so the store has one clock a test can drive.
    clock: Clock,
    /// Queues that flows made ready, sent after each commit.
    wakeups: Wakeups,
}

/// How long a connection waits for a lock another connection holds before the operation
/// fails with `Unavailable`. In WAL mode this process's readers never block the writer, so
/// the waits are short ones: WAL recovery after a crash, or another process on the same
/// file (`errand import`, a backup, the `sqlite3` shell). Five seconds outlasts those, and
/// is short enough that a lock held for good surfaces as a 503 while the caller still
/// waits, rather than as a hung request. While the writer waits, every write waits; a
/// lone write never waits on a runtime thread (it goes to the writer thread instead).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The writer's page cache, in KiB (SQLite reads a negative `cache_size` as KiB). About
/// 32 MB: a full group (the writer's `MAX_GROUP` writes of jobs of a few KB, with their
/// index pages) fits with room for the hot pages of the job indexes, so a group does not
/// spill dirty pages into the WAL before its `COMMIT` (a spill is extra I/O, and a spill
/// that fails rolls the whole group back). Only the one writer connection gets it; readers
/// keep SQLite's default.
const WRITER_CACHE_KIB: i64 = 32_000;

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
    // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, which is
    // what makes an acknowledged write survive a power cut, not only a process crash.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; \
         PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA temp_store = MEMORY;"
    ))
    .map_err(db_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The durability settings in force on the connection that commits, read back from SQLite
/// rather than assumed: SQLite keeps its old journal mode without an error when a file
/// system cannot do WAL, and `synchronous` is per connection, so only the writer's own
/// connection can say what a commit promises. `errand serve` prints it at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `PRAGMA journal_mode`: `wal` when the store runs as documented.
    pub journal_mode: String,
    /// `PRAGMA synchronous` by name: `full` when the store runs as documented.
    pub synchronous: String,
}

impl Durability {
    fn read(conn: &Connection) -> Result<Self, StoreError> {
        let journal_mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(db_error)?;
        let level: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(db_error)?;
        let synchronous = match level {
            0 => "off".to_string(),
            1 => "normal".to_string(),
            2 => "full".to_string(),
            3 => "extra".to_string(),
            other => other.to_string(),
        };
        Ok(Self {
            journal_mode: journal_mode.to_ascii_lowercase(),
            synchronous,
        })
    }

    /// Whether a commit is on disk when it returns: the WAL synced on every commit.
    fn is_documented(&self) -> bool {
        self.journal_mode == "wal" && matches!(self.synchronous.as_str(), "full" | "extra")
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "journal_mode={} synchronous={}",
            self.journal_mode, self.synchronous
        )
    }
}

/// Configures the writer's connection, checks that a commit on it is durable when it
/// returns, and brings the schema up to date.
fn prepare_writer(conn: &mut Connection, path: &Path) -> Result<Durability, StoreError> {
    configure(conn)?;
    let durability = Durability::read(conn)?;
    if !durability.is_documented() {
        return Err(StoreError::Unavailable(format!(
            "{} runs with {durability}; errand needs journal_mode=wal synchronous=full",
            path.display()
        )));
    }
    schema::migrate(conn)?;
    Ok(durability)
}

impl SqliteStore {
    /// Opens (or creates) the store and runs migrations.
    ///
    /// A file SQLite could open only read-only (a read-only file system, an immutable file)
    /// still opens, so its jobs can be read, but the store is broken from the start: every
    /// write and readiness answer `Unavailable` saying why, and it is logged at error level.
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be created or opened, a migration fails (a
    /// read-only file that needs one included), or SQLite does not run the file in WAL mode
    /// with `synchronous=FULL` (a commit would then not be durable when it returns, and
    /// errand does not acknowledge writes it may lose).
    pub fn open(options: &SqliteOptions) -> Result<Self, StoreError> {
        if let Some(dir) = options.path.parent() {
            // Made readable by its owner only: the store holds payloads and secrets.
            errand_core::private_fs::create_private_dir(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let origin = match options.path.try_exists() {
            Ok(true) => StoreOrigin::Existing,
            Ok(false) => StoreOrigin::Created,
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot look for {}: {e}",
                    options.path.display()
                )))
            }
        };
        let mut conn = Connection::open(&options.path).map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", options.path.display()))
        })?;
        if origin == StoreOrigin::Created {
            // Before WAL mode makes its `-wal` and `-shm` files, which SQLite gives the
            // main file's mode: the store holds payloads, secrets and token hashes.
            errand_core::private_fs::make_private(&options.path).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot make {} private: {e}",
                    options.path.display()
                ))
            })?;
        }
        // SQLite falls back to read-only by itself when it may not write the file, and says
        // so only here; every write would then fail while reads and `BEGIN` succeed.
        let read_only = conn.is_readonly(MAIN_DB).map_err(db_error)?;
        let read_only_why = || {
            format!(
                "{} could only be opened read-only (a read-only file system or a file errand \
                 may not write)",
                options.path.display()
            )
        };
        let durability = prepare_writer(&mut conn, &options.path).map_err(|e| {
            if read_only {
                StoreError::Unavailable(format!("{}: {e}", read_only_why()))
            } else {
                e
            }
        })?;
        let watch = Arc::new(FileWatch::record(&options.path)?);
        if read_only {
            watch.mark_broken(format!(
                "{}; errand refuses every write. Make it writable, then restart errand",
                read_only_why()
            ));
        }
        let mut readers = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            let r = Connection::open_with_flags(
                &options.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(db_error)?;
            r.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
            r.set_prepared_statement_cache_capacity(64);
            readers.push(r);
        }
        let wakeups = Wakeups::new();
        Ok(Self {
            writer: Writer::start(conn, BUSY_TIMEOUT, watch.clone(), wakeups.clone())?,
            wakeups,
            readers: ReadPool::new(readers),
            durability,
            origin,
            watch,
            clock: options.clock.clone(),
        })
    }

    /// Whether opening found the file or created it.
    pub fn origin(&self) -> StoreOrigin {
        self.origin
    }

    /// Why the store takes no writes (opened read-only, its file gone or replaced), or
    /// `Ok` while it does.
    ///
    /// # Errors
    /// `Unavailable` with the reason, for as long as the process runs.
    pub fn writable(&self) -> Result<(), StoreError> {
        self.watch.refusal()
    }

    /// The durability settings the writer connection runs with, as SQLite reported them at
    /// open.
    pub fn durability(&self) -> &Durability {
        &self.durability
    }

    /// Runs `f` on the writer with the store's time, read when the write runs (in its
    /// group) rather than when it was queued: a write that waited behind a group still judges
    /// leases by the time it commits at.
    async fn write_at<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Millis) -> QResult<T> + Send + 'static,
    {
        let clock = self.clock.clone();
        self.writer.write(move |conn| f(conn, clock.now())).await
    }

    /// Runs `f` on a read connection with the store's time, read when the read runs.
    async fn read_at<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Millis) -> QResult<T> + Send + 'static,
    {
        let clock = self.clock.clone();
        self.readers.read(move |conn| f(conn, clock.now())).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn queue_update(
        &self,
        name: &QueueName,
        patch: errand_core::queue::QueueSettingsPatch,
    ) -> Result<QueueInfo, StoreError> {
        patch
            .validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let name = name.clone();
        self.write_at(move |conn, now| queue::update(conn, now, &name, &patch))
            .await
    }

    async fn limit_put(
        &self,
        limit: errand_core::throttle::Limit,
    ) -> Result<errand_core::throttle::LimitInfo, StoreError> {
        limit
            .validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.write_at(move |conn, now| limit::put(conn, now, &limit))
            .await
    }

    async fn limit_get(
        &self,
        scope: errand_core::throttle::LimitScope,
        name: &str,
    ) -> Result<errand_core::throttle::LimitInfo, StoreError> {
        let name = name.to_string();
        self.read_at(move |conn, now| limit::get(conn, now, scope, &name))
            .await
    }

    async fn limit_list(&self) -> Result<Vec<errand_core::throttle::LimitInfo>, StoreError> {
        self.read_at(limit::list).await
    }

    async fn limit_delete(
        &self,
        scope: errand_core::throttle::LimitScope,
        name: &str,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |conn| limit::delete(conn, scope, &name))
            .await
    }

    async fn session_get(&self, key: &str) -> Result<errand_core::session::Session, StoreError> {
        let key = key.to_string();
        self.readers
            .read(move |conn| in_snapshot(conn, |c| session::get(c, &key)))
            .await
    }

    async fn session_list(
        &self,
        params: errand_store::SessionListParams,
    ) -> Result<Vec<errand_core::session::Session>, StoreError> {
        self.readers
            .read(move |conn| in_snapshot(conn, |c| session::list(c, &params)))
            .await
    }

    async fn session_state_put(
        &self,
        params: errand_store::SessionStatePutParams,
    ) -> Result<errand_core::session::Session, StoreError> {
        self.write_at(move |conn, now| session::state_put(conn, now, &params))
            .await
    }

    async fn session_unblock(
        &self,
        key: &str,
    ) -> Result<errand_core::session::Session, StoreError> {
        let key = key.to_string();
        self.write_at(move |conn, now| session::unblock(conn, now, &key))
            .await
    }

    async fn job_explain_facts(
        &self,
        id: errand_core::JobId,
    ) -> Result<errand_core::explain::ExplainFacts, StoreError> {
        self.read_at(move |conn, now| in_snapshot(conn, |c| explain::facts(c, now, id)))
            .await
    }

    async fn worker_seen_many(
        &self,
        seen: Vec<errand_core::worker::WorkerSeen>,
    ) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        self.writer
            .write(move |conn| worker::seen_many(conn, &seen))
            .await
    }

    async fn worker_list(&self) -> Result<Vec<errand_core::worker::WorkerInfo>, StoreError> {
        self.readers.read(worker::list).await
    }

    async fn worker_prune(&self, older_than: std::time::Duration) -> Result<u64, StoreError> {
        let older = millis_of(older_than);
        self.write_at(move |conn, now| worker::prune(conn, now, older))
            .await
    }

    async fn workflow_create(
        &self,
        params: errand_store::WorkflowCreateParams,
    ) -> Result<(errand_core::workflow::Workflow, bool), StoreError> {
        self.write_at(move |conn, now| workflow::create(conn, now, params))
            .await
    }

    async fn workflow_get(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError> {
        self.readers
            .read(move |conn| in_snapshot(conn, |c| workflow::get(c, id)))
            .await
    }

    async fn workflow_list(
        &self,
        params: errand_store::WorkflowListParams,
    ) -> Result<Vec<errand_core::workflow::WorkflowSummary>, StoreError> {
        self.readers
            .read(move |conn| workflow::list(conn, &params))
            .await
    }

    async fn workflow_cancel(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError> {
        self.write_at(move |conn, now| workflow::cancel(conn, now, id))
            .await
    }

    async fn workflow_retry(
        &self,
        id: errand_core::WorkflowId,
    ) -> Result<errand_core::workflow::Workflow, StoreError> {
        self.write_at(move |conn, now| workflow::retry(conn, now, id))
            .await
    }

    async fn workflow_supervise(
        &self,
        limit: u32,
    ) -> Result<Vec<errand_store::SupervisedStep>, StoreError> {
        self.write_at(move |conn, now| workflow::supervise(conn, now, limit))
            .await
    }

    async fn workflow_template_put(
        &self,
        name: &str,
        spec: errand_core::workflow::WorkflowSpec,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        self.write_at(move |conn, now| workflow::template_put(conn, now, &name, &spec))
            .await
    }

    async fn workflow_template_get(
        &self,
        name: &str,
    ) -> Result<errand_core::workflow::WorkflowSpec, StoreError> {
        let name = name.to_string();
        self.readers
            .read(move |conn| workflow::template_get(conn, &name))
            .await
    }

    async fn workflow_template_list(
        &self,
    ) -> Result<Vec<(String, errand_core::workflow::WorkflowSpec)>, StoreError> {
        self.readers.read(workflow::template_list).await
    }

    async fn workflow_template_delete(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |conn| workflow::template_delete(conn, &name))
            .await
    }

    async fn batch_create(
        &self,
        batch: errand_core::batch::NewBatch,
        params: JobInsertManyParams,
    ) -> Result<errand_store::BatchWrite, StoreError> {
        let window = params.idempotency_window;
        let jobs = job_write::prepare(params.jobs)?;
        self.write_at(move |conn, now| batch::create(conn, now, &batch, jobs, window))
            .await
    }

    async fn batch_add(
        &self,
        id: errand_core::BatchId,
        params: JobInsertManyParams,
    ) -> Result<errand_store::BatchWrite, StoreError> {
        let window = params.idempotency_window;
        let jobs = job_write::prepare(params.jobs)?;
        self.write_at(move |conn, now| batch::add(conn, now, id, jobs, window))
            .await
    }

    async fn batch_close(
        &self,
        id: errand_core::BatchId,
    ) -> Result<errand_core::batch::Batch, StoreError> {
        self.write_at(move |conn, now| batch::close(conn, now, id))
            .await
    }

    async fn batch_get(
        &self,
        id: errand_core::BatchId,
    ) -> Result<errand_core::batch::Batch, StoreError> {
        self.readers.read(move |conn| batch::get(conn, id)).await
    }

    async fn batch_list(
        &self,
        params: errand_store::BatchListParams,
    ) -> Result<Vec<errand_core::batch::Batch>, StoreError> {
        self.readers
            .read(move |conn| batch::list(conn, &params))
            .await
    }

    async fn token_create(
        &self,
        new: errand_core::NewToken,
    ) -> Result<errand_core::ApiToken, StoreError> {
        self.write_at(move |conn, now| token::create(conn, now, &new))
            .await
    }

    async fn token_get(
        &self,
        id: errand_core::TokenId,
    ) -> Result<errand_core::StoredToken, StoreError> {
        self.readers.read(move |conn| token::get(conn, id)).await
    }

    async fn token_list(&self) -> Result<Vec<errand_core::ApiToken>, StoreError> {
        self.readers.read(token::list).await
    }

    async fn token_revoke(
        &self,
        id: errand_core::TokenId,
    ) -> Result<errand_core::ApiToken, StoreError> {
        self.write_at(move |conn, now| token::revoke(conn, now, id))
            .await
    }

    async fn token_end_sessions(
        &self,
        id: errand_core::TokenId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let at = errand_core::time::to_millis(at);
        self.writer
            .write(move |conn| token::end_sessions(conn, id, at))
            .await
    }

    async fn token_used(
        &self,
        id: errand_core::TokenId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let at = errand_core::time::to_millis(at);
        self.writer
            .write(move |conn| token::used(conn, id, at))
            .await
    }

    async fn audit_append(
        &self,
        entry: errand_core::NewAuditEntry,
    ) -> Result<errand_core::AuditEntry, StoreError> {
        self.write_at(move |conn, now| audit::append(conn, now, entry))
            .await
    }

    async fn audit_list(
        &self,
        params: errand_store::AuditListParams,
    ) -> Result<Vec<errand_core::AuditEntry>, StoreError> {
        self.readers
            .read(move |conn| audit::list(conn, &params))
            .await
    }

    fn wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<QueueName>> {
        Some(self.wakeups.subscribe())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.writer
            .write(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn schema_version(&self) -> Result<SchemaVersion, StoreError> {
        self.readers.read(crate::schema::version).await
    }

    fn live(&self) -> Result<(), StoreError> {
        if self.writer.is_alive() {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "the SQLite writer thread has stopped; restart the process".into(),
            ))
        }
    }

    async fn job_insert_many(
        &self,
        params: JobInsertManyParams,
    ) -> Result<Vec<InsertedJob>, StoreError> {
        let window = params.idempotency_window;
        let jobs = job_write::prepare(params.jobs)?;
        self.write_at(move |conn, now| job_write::insert_many(conn, now, jobs, window))
            .await
    }

    async fn job_get(&self, id: JobId) -> Result<Job, StoreError> {
        self.readers
            .read(move |conn| job_row::load_job(conn, id))
            .await
    }

    async fn job_list(&self, params: JobListParams) -> Result<Vec<Job>, StoreError> {
        self.readers
            .read(move |conn| job_read::list(conn, &params))
            .await
    }

    async fn job_release_many(&self, params: JobReleaseManyParams) -> Result<Vec<Job>, StoreError> {
        self.write_at(move |conn, now| job_write::release_many(conn, now, &params))
            .await
    }

    async fn job_heartbeat(&self, params: JobHeartbeatParams) -> Result<Job, StoreError> {
        self.write_at(move |conn, now| job_write::heartbeat(conn, now, &params))
            .await
    }

    async fn job_settle_many(
        &self,
        params: JobSettleManyParams,
    ) -> Result<Vec<Result<Settled, StoreError>>, StoreError> {
        self.write_at(move |conn, now| job_settle::settle_many(conn, now, &params))
            .await
    }

    /// The writer commits concurrent writes together already; combining claims on top
    /// took that overlap away (16-in-flight cycle, 2026-12-06: 8,458–9,135 jobs/s alone,
    /// 6,872–7,048 with two calls at once, 7,945–8,281 with one), and combining enqueues
    /// gained nothing beyond the noise (64 clients), so every request goes alone.
    fn combined_calls_at_once(&self) -> usize {
        usize::MAX
    }

    async fn job_settle_and_claim_together(
        &self,
        settle: JobSettleManyParams,
        claims: JobClaimTogetherParams,
    ) -> Result<SettledAndClaimedTogether, StoreError> {
        self.write_at(move |conn, now| {
            let settled = job_settle::settle_many(conn, now, &settle)?;
            let claimed = claim::claim_together(conn, now, &claims)?;
            Ok(SettledAndClaimedTogether { settled, claimed })
        })
        .await
    }

    async fn job_insert_and_claim(
        &self,
        insert: JobInsertManyParams,
        claims: JobClaimTogetherParams,
    ) -> Result<InsertedAndClaimed, StoreError> {
        let window = insert.idempotency_window;
        let jobs = job_write::prepare(insert.jobs)?;
        self.write_at(move |conn, now| {
            let inserted = job_write::insert_many(conn, now, jobs, window)?;
            let claimed = claim::claim_together(conn, now, &claims)?;
            Ok(InsertedAndClaimed { inserted, claimed })
        })
        .await
    }

    async fn job_cancel(&self, id: JobId) -> Result<Job, StoreError> {
        self.write_at(move |conn, now| job_settle::cancel(conn, now, id))
            .await
    }

    async fn job_retry(&self, id: JobId) -> Result<Job, StoreError> {
        self.write_at(move |conn, now| job_settle::retry(conn, now, id))
            .await
    }

    async fn job_attempt_list(&self, id: JobId) -> Result<Vec<Attempt>, StoreError> {
        self.readers
            .read(move |conn| job_read::attempts(conn, id))
            .await
    }

    async fn job_rescue_expired(&self, params: JobRescueParams) -> Result<Vec<Job>, StoreError> {
        self.write_at(move |conn, now| maintenance::rescue_expired(conn, now, &params))
            .await
    }

    async fn job_promote_due(&self, limit: u32) -> Result<Vec<QueueName>, StoreError> {
        self.write_at(move |conn, now| maintenance::promote_due(conn, now, limit))
            .await
    }

    async fn due_in(&self, work: DueWork) -> Result<Option<std::time::Duration>, StoreError> {
        self.read_at(move |conn, now| maintenance::due_in(conn, now, work))
            .await
    }

    async fn queue_list(&self) -> Result<Vec<QueueInfo>, StoreError> {
        self.read_at(|conn, now| queue::list(conn, now, None)).await
    }

    async fn queue_get(&self, name: &QueueName) -> Result<QueueInfo, StoreError> {
        let name = name.clone();
        self.read_at(move |conn, now| {
            queue::list(conn, now, Some(&name))?
                .pop()
                .ok_or_else(|| StoreError::queue_not_found(&name).into())
        })
        .await
    }

    async fn queue_pause(&self, name: &QueueName) -> Result<QueueInfo, StoreError> {
        let name = name.clone();
        self.write_at(move |conn, now| queue::set_paused(conn, now, &name, true))
            .await
    }

    async fn queue_resume(&self, name: &QueueName) -> Result<QueueInfo, StoreError> {
        let name = name.clone();
        self.write_at(move |conn, now| queue::set_paused(conn, now, &name, false))
            .await
    }

    async fn dead_requeue_many(&self, selection: DeadSelection) -> Result<u64, StoreError> {
        self.write_at(move |conn, now| queue::dead_requeue(conn, now, &selection))
            .await
    }

    async fn dead_purge_many(&self, selection: DeadSelection) -> Result<u64, StoreError> {
        self.write_at(move |conn, now| queue::dead_purge(conn, now, &selection))
            .await
    }

    async fn job_prune(&self, params: JobPruneParams) -> Result<u64, StoreError> {
        self.write_at(move |conn, now| maintenance::prune(conn, now, &params))
            .await
    }

    async fn job_restore_many(&self, jobs: Vec<RestoredJob>) -> Result<u64, StoreError> {
        self.write_at(move |conn, now| restore::restore_many(conn, now, &jobs))
            .await
    }

    async fn queue_upsert(&self, params: QueueUpsertParams) -> Result<(), StoreError> {
        self.write_at(move |conn, now| {
            restore::queue_upsert(conn, now, params.name.as_str(), params.paused)
        })
        .await
    }

    async fn clock_now(&self) -> Result<Millis, StoreError> {
        Ok(self.clock.now())
    }

    async fn schedule_put(&self, params: SchedulePutParams) -> Result<ScheduleChange, StoreError> {
        self.write_at(move |conn, now| schedule::put(conn, now, &params))
            .await
    }

    async fn schedule_get(&self, name: &ScheduleName) -> Result<Schedule, StoreError> {
        let name = name.as_str().to_string();
        self.readers
            .read(move |conn| schedule::get(conn, &name))
            .await
    }

    async fn schedule_list(&self) -> Result<Vec<Schedule>, StoreError> {
        self.readers.read(schedule::list).await
    }

    async fn schedule_delete(&self, name: &ScheduleName) -> Result<Vec<Job>, StoreError> {
        let name = name.as_str().to_string();
        self.write_at(move |conn, now| schedule::delete(conn, now, &name))
            .await
    }

    async fn schedule_pause(&self, name: &ScheduleName) -> Result<ScheduleChange, StoreError> {
        let name = name.as_str().to_string();
        self.write_at(move |conn, now| schedule::set_paused(conn, now, &name, true))
            .await
    }

    async fn schedule_resume(&self, name: &ScheduleName) -> Result<Schedule, StoreError> {
        let name = name.as_str().to_string();
        self.write_at(move |conn, now| {
            schedule::set_paused(conn, now, &name, false).map(|c| c.schedule)
        })
        .await
    }

    async fn schedule_due(
        &self,
        limit: u32,
        ahead: std::time::Duration,
    ) -> Result<(Millis, Vec<Schedule>), StoreError> {
        let ahead = errand_store::lead_millis(ahead);
        self.read_at(move |conn, now| Ok((now, schedule::due(conn, now, ahead, limit)?)))
            .await
    }

    async fn schedule_fire_many(
        &self,
        params: Vec<ScheduleFireParams>,
    ) -> Result<Vec<ScheduleFireOutcome>, StoreError> {
        self.write_at(move |conn, now| schedule::fire_many(conn, now, params))
            .await
    }

    async fn schedule_slot_list(
        &self,
        params: ScheduleSlotListParams,
    ) -> Result<Vec<ScheduleSlotRecord>, StoreError> {
        self.readers
            .read(move |conn| schedule::slot_list(conn, &params))
            .await
    }

    async fn schedule_slot_restore_many(
        &self,
        slots: Vec<ScheduleSlotRecord>,
    ) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| schedule::slot_restore_many(conn, &slots))
            .await
    }

    async fn schedule_slot_prune(
        &self,
        params: ScheduleSlotPruneParams,
    ) -> Result<u64, StoreError> {
        self.write_at(move |conn, now| schedule::slot_prune(conn, now, &params))
            .await
    }

    async fn node_heartbeat(&self, params: NodeHeartbeatParams) -> Result<(), StoreError> {
        self.write_at(move |conn, now| node::heartbeat(conn, now, &params))
            .await
    }

    async fn node_stop(&self, id: NodeId) -> Result<(), StoreError> {
        self.write_at(move |conn, now| node::stop(conn, now, id))
            .await
    }

    async fn node_list(
        &self,
        dead_after: std::time::Duration,
        forget_after: std::time::Duration,
    ) -> Result<Vec<NodeInfo>, StoreError> {
        let dead = i64::try_from(dead_after.as_millis()).unwrap_or(i64::MAX);
        let forget = i64::try_from(forget_after.as_millis()).unwrap_or(i64::MAX);
        self.read_at(move |conn, now| node::list(conn, now, dead, forget))
            .await
    }

    async fn job_log_append(&self, params: JobLogAppendParams) -> Result<u64, StoreError> {
        let lines = job_log::prepare(params)?;
        self.write_at(move |conn, now| job_log::append(conn, now, &lines))
            .await
    }

    async fn job_log_list(&self, params: JobLogListParams) -> Result<Vec<LogEntry>, StoreError> {
        self.readers
            .read(move |conn| job_log::list(conn, &params))
            .await
    }

    async fn job_log_prune(
        &self,
        older_than: std::time::Duration,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let older = millis_of(older_than);
        self.write_at(move |conn, now| job_log::prune(conn, now, older, limit))
            .await
    }

    async fn lease_acquire(&self, params: LeaseAcquireParams) -> Result<bool, StoreError> {
        self.write_at(move |conn, now| named_lease::acquire(conn, now, &params))
            .await
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.writer
            .write(move |conn| named_lease::release(conn, &name, &holder))
            .await
    }

    async fn instance_put(&self, record: InstanceRecord) -> Result<(), StoreError> {
        self.write_at(move |conn, now| instance::put(conn, now, &record))
            .await
    }

    async fn instance_list(
        &self,
        definition: Option<String>,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        self.readers
            .read(move |conn| instance::list(conn, definition.as_deref()))
            .await
    }

    async fn instance_delete(&self, node: NodeId, instance: uuid::Uuid) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| instance::delete(conn, node, instance))
            .await
    }

    async fn instance_prune(&self, stale_after: std::time::Duration) -> Result<u64, StoreError> {
        let stale = millis_of(stale_after);
        self.write_at(move |conn, now| instance::prune(conn, now, stale))
            .await
    }

    async fn definition_switch_put(&self, name: String, stopped: bool) -> Result<(), StoreError> {
        self.write_at(move |conn, now| definition_switch::put(conn, now, &name, stopped))
            .await
    }

    async fn definition_switch_list(&self) -> Result<Vec<(String, bool)>, StoreError> {
        self.readers.read(definition_switch::list).await
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
        let job = job_write::prepare(vec![job])?
            .pop()
            .ok_or_else(|| StoreError::Internal("a prepared batch of one is empty".into()))?;
        self.write_at(move |conn, now| {
            mark::insert_marked(conn, now, job, &scope, &key, idempotency_window)
        })
        .await
    }

    async fn event_read(
        &self,
        after: Option<errand_core::EventId>,
        limit: u32,
    ) -> Result<errand_store::EventPage, StoreError> {
        self.readers
            .read(move |conn| event_log::read(conn, after, limit))
            .await
    }

    async fn event_head(&self) -> Result<Option<errand_core::EventId>, StoreError> {
        self.readers.read(event_log::head).await
    }

    async fn event_prune(&self, params: errand_store::EventPruneParams) -> Result<u64, StoreError> {
        self.write_at(move |conn, now| event_log::prune(conn, now, &params))
            .await
    }

    async fn mark_list(&self, scope: &str) -> Result<Vec<String>, StoreError> {
        let scope = scope.to_string();
        self.readers
            .read(move |conn| mark::list(conn, &scope))
            .await
    }

    async fn mark_delete(&self, scope: &str, keys: Vec<String>) -> Result<u64, StoreError> {
        let scope = scope.to_string();
        self.writer
            .write(move |conn| mark::delete(conn, &scope, &keys))
            .await
    }

    async fn subscription_create(&self, new: NewSubscription) -> Result<Subscription, StoreError> {
        self.write_at(move |conn, now| subscription::create(conn, now, &new))
            .await
    }

    async fn subscription_get(&self, id: SubscriptionId) -> Result<Subscription, StoreError> {
        self.readers
            .read(move |conn| subscription::get(conn, id))
            .await
    }

    async fn subscription_list(&self) -> Result<Vec<Subscription>, StoreError> {
        self.readers.read(subscription::list).await
    }

    async fn subscription_update(
        &self,
        id: SubscriptionId,
        patch: SubscriptionPatch,
    ) -> Result<Subscription, StoreError> {
        self.write_at(move |conn, now| subscription::update(conn, now, id, patch))
            .await
    }

    async fn subscription_delete(&self, id: SubscriptionId) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| subscription::delete(conn, id))
            .await
    }

    async fn delivery_cursor(&self) -> Result<Option<EventId>, StoreError> {
        self.readers.read(delivery_queue::cursor).await
    }

    async fn delivery_fanout(&self, params: DeliveryFanoutParams) -> Result<bool, StoreError> {
        self.write_at(move |conn, now| delivery_queue::fanout(conn, now, &params))
            .await
    }

    async fn delivery_claim(
        &self,
        params: DeliveryClaimParams,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.write_at(move |conn, now| delivery_queue::claim(conn, now, &params))
            .await
    }

    async fn delivery_settle(&self, params: DeliverySettleParams) -> Result<Delivery, StoreError> {
        self.write_at(move |conn, now| delivery_queue::settle(conn, now, &params))
            .await
    }

    async fn delivery_list(&self, params: DeliveryListParams) -> Result<Vec<Delivery>, StoreError> {
        self.readers
            .read(move |conn| delivery_queue::list(conn, &params))
            .await
    }

    async fn delivery_prune(
        &self,
        older_than: std::time::Duration,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let older = millis_of(older_than);
        self.write_at(move |conn, now| delivery_queue::prune(conn, now, older, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_new_store_and_its_directory_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("new").join("data");
        let _store = SqliteStore::open(&SqliteOptions::in_dir(&data)).expect("open");
        for path in [
            data.clone(),
            data.join("errand.sqlite3"),
            data.join("errand.sqlite3-wal"),
        ] {
            let mode = std::fs::metadata(&path).expect("made").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{}: {mode:o}", path.display());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_writer_fails_liveness() {
        // `/healthz` asks `Engine::live`, which asks this: a process whose writer thread is
        // gone can never write again and must be restarted, so liveness fails with it.
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open");
        store.live().expect("a fresh store is live");
        store.writer.kill_for_test().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match store.live() {
                Err(StoreError::Unavailable(_)) => break,
                other => {
                    assert!(Instant::now() < deadline, "still live: {other:?}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
