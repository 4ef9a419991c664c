//! Queue reads and writes, and bulk operations on dead jobs.

use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::GenericClient;
use errand_core::queue::{JobDefaults, QueueSettings, QueueSettingsPatch};
use errand_core::{EventType, Job, JobState, QueueInfo, QueueName, StateCounts};

use crate::limit::{rate_columns, rate_of};
use errand_store::{DeadSelection, StoreError};

use crate::fault::{corrupt, Fault, QResult, RowExt};
use crate::job_row::{jobs_from_rows, JOB_COLUMNS};
use crate::job_settle::REVIVE;
use crate::sole_task::SoleTask;
use crate::transition::record_changes;

/// Per queue, how long its earliest ready job (not parked behind a gate) has been due,
/// without reading them all. The claim index (`jobs_ready`: queue, priority DESC,
/// fair_rank NULLS FIRST, run_at, parked jobs left out) holds, within each priority, the
/// jobs without a fair rank (every job of a queue without tenants) first and in `run_at`
/// order, so this hops from one priority present to the next and takes the first of
/// those. Every subquery repeats `NOT parked`, the index's own condition, or PostgreSQL
/// cannot use it. The first entry is read with `ORDER BY ... LIMIT 1` rather than
/// `MIN(run_at)`: PostgreSQL does not see that `fair_rank IS NULL` fixes the index order
/// and would read the whole priority (300 ms for four queues of 250,000 jobs, against
/// 0.4 ms). Ranked jobs (a fair queue) are ordered by rank, not `run_at`: their minimum is
/// a scan of that priority's ranked jobs, an empty range in a queue without tenants. The
/// cost of a plain queue grows with its distinct priorities, not its jobs. The same shape
/// as the SQLite store's. A negative age (nothing due yet) is dropped by the caller.
macro_rules! oldest_ready_age {
    () => {
        "errand_now() - ( \
        WITH RECURSIVE p(pr) AS ( \
            SELECT MAX(priority) FROM jobs \
            WHERE queue = q.name AND state IN ('available', 'scheduled') AND NOT parked \
            UNION ALL \
            SELECT (SELECT MAX(priority) FROM jobs \
                    WHERE queue = q.name AND state IN ('available', 'scheduled') AND NOT parked \
                    AND priority < p.pr) \
            FROM p WHERE p.pr IS NOT NULL) \
        SELECT MIN(LEAST( \
            (SELECT run_at FROM jobs \
             WHERE queue = q.name AND state IN ('available', 'scheduled') AND NOT parked \
             AND priority = p.pr AND fair_rank IS NULL \
             ORDER BY priority DESC, fair_rank NULLS FIRST, run_at LIMIT 1), \
            (SELECT MIN(run_at) FROM jobs \
             WHERE queue = q.name AND state IN ('available', 'scheduled') AND NOT parked \
             AND priority = p.pr AND fair_rank IS NOT NULL))) \
        FROM p WHERE p.pr IS NOT NULL)"
    };
}

/// Every column of a queue's answer, one row per queue: its settings, its counts (states
/// and sums as two arrays, each ordered by state so that they pair up) and
/// [`oldest_ready_age!`]. One statement, so one round trip.
macro_rules! queue_info_select {
    () => {
        concat!(
            "SELECT q.name, q.paused, q.concurrency, q.rate_limit, q.rate_period_ms, \
                 q.rate_burst, q.defaults, c.states, c.sums, ",
            oldest_ready_age!(),
            " FROM queues q LEFT JOIN LATERAL ( \
                 SELECT array_agg(state ORDER BY state) AS states, \
                     array_agg(n ORDER BY state) AS sums FROM ( \
                     SELECT state, SUM(n)::bigint AS n FROM queue_counts \
                     WHERE queue = q.name GROUP BY state) s) c ON true"
        )
    };
}

/// Every queue, by name in code point order (as the SQLite store and Rust order names, not
/// by the database's collation). No parameter: PostgreSQL plans it once per connection.
const ALL_QUEUES: &str = concat!(queue_info_select!(), " ORDER BY q.name COLLATE \"C\"");

/// One queue. The plain equality on the primary key (not `$1 IS NULL OR name = $1`) lets
/// PostgreSQL see that a generic plan reads one queue, so it keeps one after five calls
/// rather than planning every call again (0.9 ms a read against 0.25 ms, with 1,000,000
/// jobs).
const ONE_QUEUE: &str = concat!(queue_info_select!(), " WHERE q.name = $1");

/// Folds the signed rows of `queue_counts` into one per queue and state (dropping those
/// that sum to zero), so that reading the counts sums a few rows. Rows another node is
/// folding at the same moment are skipped, not waited on; every row is folded by exactly
/// one statement, so the sums stay exact. Returns how many rows it folded.
pub(crate) async fn fold_counts(client: &impl GenericClient) -> QResult<u64> {
    let stmt = client
        .prepare_cached(
            "WITH gone AS ( \
                 DELETE FROM queue_counts WHERE ctid IN ( \
                     SELECT ctid FROM queue_counts WHERE (queue, state) IN ( \
                         SELECT queue, state FROM queue_counts GROUP BY queue, state \
                         HAVING COUNT(*) > 1 OR SUM(n) = 0) \
                     FOR UPDATE SKIP LOCKED) \
                 RETURNING queue, state, n), \
             folded AS ( \
                 INSERT INTO queue_counts (queue, state, n) \
                 SELECT queue, state, SUM(n)::bigint FROM gone GROUP BY queue, state \
                 HAVING SUM(n) <> 0) \
             SELECT COUNT(*) FROM gone",
        )
        .await?;
    let n: i64 = client.query_one(&stmt, &[]).await?.column(0)?;
    Ok(n.max(0) as u64)
}

/// Folded count rows after which `queue_counts` is vacuumed. Every write statement appends
/// a row and each fold deletes them, so under load the table collects dead rows faster
/// than autovacuum (which looks once a minute) reclaims them, and a count read scans them
/// all: measured, 245,000 dead rows (12 MB) after loading 1,000,000 jobs and draining
/// 20,000, and `GET /v1/queues/{queue}` took 10 ms instead of under 1. Vacuuming a table of
/// some ten thousand dead rows costs PostgreSQL a few milliseconds.
pub(crate) const VACUUM_AFTER_FOLDED: u64 = 10_000;

/// Vacuums `queue_counts` once [`VACUUM_AFTER_FOLDED`] rows were folded since the last
/// time: in a task beside the folds (cutting the table's empty tail waits for a lock, which
/// may take seconds), one at a time per node, skipped while another node vacuums it.
/// Needs the role that owns the table (the one errand's migrations ran as); another role
/// gets a warning from PostgreSQL and nothing is reclaimed.
#[derive(Default)]
pub(crate) struct CountVacuum {
    folded: AtomicU64,
    vacuum: SoleTask,
}

impl CountVacuum {
    /// Counts `rows` folded, and starts a vacuum when enough were.
    pub(crate) fn folded(&self, rows: u64, pool: &deadpool_postgres::Pool) {
        let since = self.folded.fetch_add(rows, Ordering::Relaxed) + rows;
        if since < VACUUM_AFTER_FOLDED {
            return;
        }
        let pool = pool.clone();
        let started = self.vacuum.start(async move {
            let run: QResult<()> = async {
                pool.get()
                    .await?
                    .batch_execute("VACUUM (SKIP_LOCKED) queue_counts")
                    .await?;
                Ok(())
            }
            .await;
            if let Err(e) = run {
                tracing::warn!(error = %StoreError::from(e), "could not vacuum queue_counts; count reads slow down until autovacuum does");
            }
        });
        if started {
            self.folded.store(0, Ordering::Relaxed);
        }
    }
}

/// Every queue, or one, with counts per state and the age of its oldest ready job, in one
/// statement.
pub(crate) async fn list(
    client: &impl GenericClient,
    only: Option<&QueueName>,
) -> QResult<Vec<QueueInfo>> {
    let rows = match only {
        Some(name) => {
            let stmt = client.prepare_cached(ONE_QUEUE).await?;
            client.query(&stmt, &[&name.as_str()]).await?
        }
        None => {
            let stmt = client.prepare_cached(ALL_QUEUES).await?;
            client.query(&stmt, &[]).await?
        }
    };
    rows.iter().map(queue_info_from_row).collect()
}

/// A row of [`queue_info_select!`].
fn queue_info_from_row(row: &tokio_postgres::Row) -> QResult<QueueInfo> {
    let mut counts = StateCounts::default();
    let states: Option<Vec<String>> = row.column(7)?;
    let sums: Option<Vec<i64>> = row.column(8)?;
    for (state, n) in states
        .unwrap_or_default()
        .iter()
        .zip(sums.unwrap_or_default())
    {
        if let Ok(state) = state.parse::<JobState>() {
            counts.add(state, n.max(0) as u64);
        }
    }
    let age: Option<i64> = row.column(9)?;
    Ok(QueueInfo {
        name: QueueName::parse(&row.column::<String>(0)?).map_err(corrupt)?,
        paused: row.column(1)?,
        counts,
        oldest_available_age_ms: age.filter(|&a| a >= 0).map(|a| a as u64),
        waiting_claims: 0,
        settings: settings_from_row(row, 2)?,
    })
}

/// A queue's settings from its columns `concurrency, rate_limit, rate_period_ms,
/// rate_burst, defaults` starting at `at`.
fn settings_from_row(row: &tokio_postgres::Row, at: usize) -> QResult<QueueSettings> {
    let defaults: Option<serde_json::Value> = row.column(at + 4)?;
    Ok(QueueSettings {
        concurrency: row.column::<Option<i32>>(at)?.map(|c| c.max(0) as u32),
        rate: rate_of(
            row.column(at + 1)?,
            row.column(at + 2)?,
            row.column(at + 3)?,
        ),
        defaults: defaults
            .map(serde_json::from_value::<JobDefaults>)
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default(),
    })
}

/// Reads a queue's settings (and locks its row when `lock`), creating the queue when
/// missing.
async fn locked_settings(client: &impl GenericClient, name: &str) -> QResult<QueueSettings> {
    let create = client
        .prepare_cached(
            "INSERT INTO queues (name, created_at) VALUES ($1, errand_now()) ON CONFLICT DO NOTHING",
        )
        .await?;
    client.execute(&create, &[&name]).await?;
    let stmt = client
        .prepare_cached(
            "SELECT name, paused, concurrency, rate_limit, rate_period_ms, rate_burst, defaults \
             FROM queues WHERE name = $1 FOR UPDATE",
        )
        .await?;
    settings_from_row(&client.query_one(&stmt, &[&name]).await?, 2)
}

/// Defaults as the `defaults` column keeps them: their JSON form, with `timeout` in
/// milliseconds (which that form also reads) so the insert statement can use it.
fn stored_defaults(d: &JobDefaults) -> QResult<serde_json::Value> {
    let mut v =
        serde_json::to_value(d).map_err(|e| Fault::Store(StoreError::Internal(e.to_string())))?;
    if let (Some(ms), Some(obj)) = (d.timeout_ms, v.as_object_mut()) {
        obj.insert("timeout".into(), serde_json::Value::from(ms));
    }
    Ok(v)
}

/// Applies a settings patch (validated first: a bad one changes nothing), creating the
/// queue when missing. A changed rate starts with a full bucket.
pub(crate) async fn update(
    client: &impl GenericClient,
    name: &QueueName,
    patch: &QueueSettingsPatch,
) -> QResult<QueueInfo> {
    patch
        .validate()
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    let old = locked_settings(client, name.as_str()).await?;
    let new = patch.apply_to(&old);
    let (rl, rp, rb) = rate_columns(new.rate.as_ref());
    let defaults = (new.defaults != JobDefaults::default())
        .then(|| stored_defaults(&new.defaults))
        .transpose()?;
    let stmt = client
        .prepare_cached(
            "UPDATE queues SET concurrency = $2, rate_limit = $3, rate_period_ms = $4, rate_burst = $5, \
                 defaults = $6, paused = COALESCE($7, paused), \
                 tokens = CASE WHEN $8 THEN NULL ELSE tokens END, \
                 tokens_at = CASE WHEN $8 THEN NULL ELSE tokens_at END \
             WHERE name = $1",
        )
        .await?;
    let conc = new
        .concurrency
        .map(|c| i32::try_from(c).unwrap_or(i32::MAX));
    client
        .execute(
            &stmt,
            &[
                &name.as_str(),
                &conc,
                &rl,
                &rp,
                &rb,
                &defaults,
                &patch.paused,
                &(new.rate != old.rate),
            ],
        )
        .await?;
    list(client, Some(name))
        .await?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::queue_not_found(name)))
}

/// Pauses or resumes a queue.
pub(crate) async fn set_paused(
    client: &impl GenericClient,
    name: &QueueName,
    paused: bool,
) -> QResult<QueueInfo> {
    let stmt = client
        .prepare_cached("UPDATE queues SET paused = $2 WHERE name = $1")
        .await?;
    if client.execute(&stmt, &[&name.as_str(), &paused]).await? == 0 {
        return Err(Fault::Store(StoreError::queue_not_found(name)));
    }
    list(client, Some(name))
        .await?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::queue_not_found(name)))
}

/// The WHERE clause of a dead selection over `$1` (queue or NULL) and `$2` (ids or NULL).
/// Dead jobs a requeue may revive: not workflow jobs, which are run again with their
/// workflow (`POST /v1/workflows/{id}/retry`).
const REQUEUABLE: &str = "step_role IS NULL";

const DEAD_SELECTION: &str =
    "state = 'dead' AND ($1::text IS NULL OR queue = $1) AND ($2::uuid[] IS NULL OR id = ANY($2))";

fn selection_args(sel: &DeadSelection) -> (Option<String>, Option<Vec<uuid::Uuid>>) {
    match sel {
        DeadSelection::All => (None, None),
        DeadSelection::Queue(q) => (Some(q.as_str().to_string()), None),
        DeadSelection::Ids { ids, queue } => (
            queue.as_ref().map(|q| q.as_str().to_string()),
            Some(ids.iter().map(|i| i.0).collect()),
        ),
    }
}

/// Makes selected dead jobs available again, each with its `job.enqueued`; returns them.
/// They are revived in line order (gate, then seq), so a session's or key's jobs come back
/// in enqueue order.
pub(crate) async fn dead_requeue(
    client: &impl GenericClient,
    sel: &DeadSelection,
) -> QResult<Vec<Job>> {
    let (queue, ids) = selection_args(sel);
    let stmt = client
        .prepare_cached(&format!(
            "WITH r AS (UPDATE jobs SET {REVIVE} WHERE {DEAD_SELECTION} AND {REQUEUABLE} RETURNING *) \
             SELECT {JOB_COLUMNS} FROM r ORDER BY gate, gate_seq, id"
        ))
        .await?;
    let mut jobs = jobs_from_rows(&client.query(&stmt, &[&queue, &ids]).await?)?;
    crate::gate::revived(client, &mut jobs).await?;
    // A dead job of a batch is pending again (unless its batch completed).
    crate::batch_store::uncount_ends(
        client,
        jobs.iter()
            .filter_map(|j| j.flow.batch_id.map(|b| (b, JobState::Dead))),
    )
    .await?;
    record_changes(client, jobs.iter().map(|j| (j, EventType::JobEnqueued))).await?;
    Ok(jobs)
}

/// Deletes selected dead jobs and their attempts. A session blocked on a deleted dead
/// head moves on ([`crate::gate::jobs_deleted`]).
pub(crate) async fn dead_purge(
    client: &impl GenericClient,
    sel: &DeadSelection,
) -> QResult<(u64, Vec<String>)> {
    let (queue, ids) = selection_args(sel);
    let stmt = client
        .prepare_cached(&format!(
            "WITH gone AS (DELETE FROM jobs WHERE {DEAD_SELECTION} RETURNING id, gate), \
             attempts AS (DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM gone)), \
             edges AS (DELETE FROM job_deps WHERE parent_id IN (SELECT id FROM gone) \
                 OR child_id IN (SELECT id FROM gone)), \
             logs AS (DELETE FROM job_logs WHERE owner IN (SELECT id FROM gone)) \
             {DELETED}"
        ))
        .await?;
    let row = client.query_one(&stmt, &[&queue, &ids]).await?;
    deleted(client, &row).await
}

/// The SELECT over a `gone (id, gate)` of deleted jobs: how many, and the ids and gates of
/// the session jobs among them (one of them may be its session's blocking head).
pub(crate) const DELETED: &str = "SELECT (SELECT COUNT(*) FROM gone), \
     ARRAY(SELECT id FROM gone WHERE gate LIKE 'session:%' ORDER BY gate, id), \
     ARRAY(SELECT gate FROM gone WHERE gate LIKE 'session:%' ORDER BY gate, id)";

/// Reads a [`DELETED`] row and moves on the sessions a deleted head blocked; returns how
/// many jobs were deleted and the queues of the jobs the sessions let in.
pub(crate) async fn deleted(
    client: &impl GenericClient,
    row: &tokio_postgres::Row,
) -> QResult<(u64, Vec<String>)> {
    let n: i64 = row.column(0)?;
    let ids: Vec<uuid::Uuid> = row.column(1)?;
    let gates: Vec<String> = row.column(2)?;
    let heads: Vec<(uuid::Uuid, String)> = ids.into_iter().zip(gates).collect();
    let queues = crate::gate::jobs_deleted(client, &heads).await?;
    Ok((n.max(0) as u64, queues))
}
