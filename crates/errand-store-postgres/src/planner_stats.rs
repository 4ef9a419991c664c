//! Keeps PostgreSQL's planner statistics in step with the jobs table as it grows.
//!
//! errand's statements are prepared once per connection, and after five calls PostgreSQL may
//! keep a generic plan for one: costed once, with the table sizes of that moment, and kept
//! until the table's statistics change. On a new store that moment is an empty table, where
//! reading every page is the cheapest plan; the plan stays while the table grows to
//! thousands of pages, until autovacuum's next `ANALYZE` (it looks once a minute, and
//! analyzes after a tenth of the table changed). Measured on the benchmark's fresh schema at
//! 1,000 jobs/s: every settle of several jobs read the whole `jobs` table through a hash
//! join (1,401 sequential scans and 8.2 million rows read in 5 s). Analyzing the table each
//! time its size has doubled since PostgreSQL last recorded it (by `ANALYZE` or `VACUUM`)
//! makes it plan again with the size it has, a few times in the table's life (at 32 pages,
//! 64, 128, …).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use errand_store::StoreError;

use crate::fault::{QResult, RowExt};

/// Smallest size, in pages of 8 KiB, at which the table is analyzed (about 1,500 small
/// jobs), below which reading every page costs about as little as any plan.
pub(crate) const MIN_PAGES: i64 = 32;

/// How long a node waits before looking again after a look failed (a statement timeout
/// shorter than the `ANALYZE`, say), so that a failure is not repeated every second.
const AFTER_FAILURE: Duration = Duration::from_secs(60);

/// The tables whose size the costliest plans depend on, among those this role may analyze
/// (it owns them, or is a member of their owner's role, or a superuser): `jobs`, read by id
/// in every settle of several. (Attempts and events, read by index whatever their size in
/// the same measurement, are left to autovacuum: each `ANALYZE` has every backend plan the
/// statements that read the table again.)
const GROWN: &str = "SELECT t::text FROM unnest(ARRAY[to_regclass('jobs')]) AS t \
     JOIN pg_class c ON c.oid = t \
     WHERE pg_has_role(c.relowner, 'USAGE') \
       AND pg_relation_size(t) / current_setting('block_size')::bigint \
         >= GREATEST($1::bigint, 2 * c.relpages::bigint)";

/// One node's look at a time per schema: a node that finds another looking skips its turn
/// (the table's recorded size tells it afterwards that nothing is left to do).
const ONE_AT_A_TIME: &str =
    "SELECT pg_try_advisory_xact_lock(hashtext('errand analyze ' || current_schema()))";

/// In a transaction holding [`ONE_AT_A_TIME`]'s lock (taken only when a first read finds
/// something to do), asks PostgreSQL to analyze each of the
/// growing tables whose size doubled since it was last recorded (or that reached
/// [`MIN_PAGES`] without one), and returns their names; none when another node is looking.
/// A table another session is vacuuming or analyzing is skipped (`SKIP_LOCKED`).
pub(crate) async fn analyze_grown(client: &mut deadpool_postgres::Object) -> QResult<Vec<String>> {
    // Most looks find nothing: one read, without a transaction or the lock.
    let grown = client.prepare_cached(GROWN).await?;
    if client.query(&grown, &[&MIN_PAGES]).await?.is_empty() {
        return Ok(Vec::new());
    }
    let tx = client.transaction().await?;
    let mut asked = Vec::new();
    if tx.query_one(ONE_AT_A_TIME, &[]).await?.column::<bool>(0)? {
        // Again under the lock: another node may have analyzed it meanwhile.
        for row in tx.query(&grown, &[&MIN_PAGES]).await? {
            // A name from the catalog's own `regclass` output, quoted where it needs to be.
            let table: String = row.column(0)?;
            tx.batch_execute(&format!("ANALYZE (SKIP_LOCKED) {table}"))
                .await?;
            asked.push(table);
        }
    }
    tx.commit().await?;
    Ok(asked)
}

/// Starts [`analyze_grown`] beside the count folds: one look at a time per node, none for
/// [`AFTER_FAILURE`] after a failed one. A failure is logged, not returned: only the plans'
/// cost waits for the next look, or for autovacuum.
#[derive(Default)]
pub(crate) struct GrowthWatch {
    running: Arc<AtomicBool>,
    /// When no look starts before, after a failed one.
    not_before: Arc<Mutex<Option<Instant>>>,
}

impl GrowthWatch {
    /// Looks once, in a task of its own, unless a look is running or failed lately.
    pub(crate) fn look(&self, pool: &deadpool_postgres::Pool) {
        let waiting = self
            .not_before
            .lock()
            .map(|t| t.is_some_and(|t| Instant::now() < t))
            .unwrap_or(false);
        if waiting || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = pool.clone();
        let running = self.running.clone();
        let not_before = self.not_before.clone();
        tokio::spawn(async move {
            let run: QResult<Vec<String>> =
                async { analyze_grown(&mut pool.get().await?).await }.await;
            match run {
                Ok(tables) if !tables.is_empty() => {
                    tracing::debug!(
                        ?tables,
                        "asked PostgreSQL to analyze tables that doubled in size"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    if let Ok(mut t) = not_before.lock() {
                        *t = Some(Instant::now() + AFTER_FAILURE);
                    }
                    tracing::warn!(error = %StoreError::from(e), "could not analyze the jobs table; plans may read it whole until autovacuum does");
                }
            }
            running.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use errand_store::conformance::new_job;
    use errand_store::{JobInsertManyParams, Store};

    use super::analyze_grown;
    use crate::PgStore;

    /// `jobs`' pages on disk, and the pages PostgreSQL last recorded (0: never).
    async fn pages(raw: &tokio_postgres::Client) -> (i64, i32) {
        let row = raw
            .query_one(
                "SELECT pg_relation_size('jobs') / current_setting('block_size')::bigint, \
                     relpages FROM pg_class WHERE oid = to_regclass('jobs')",
                &[],
            )
            .await
            .expect("jobs size");
        (row.get(0), row.get(1))
    }

    async fn insert(store: &PgStore, count: usize) {
        store
            .job_insert_many(JobInsertManyParams {
                jobs: (0..count).map(|_| new_job("default", "k")).collect(),
                idempotency_window: Duration::from_secs(60),
            })
            .await
            .expect("insert");
    }

    /// Below 32 pages nothing is analyzed; at 32 the table is; then not again until it has
    /// doubled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_is_analyzed_from_32_pages_and_then_each_time_it_doubles() {
        let Some(schema) = errand_testkit::PgSchema::create("planner stats doubling").await else {
            return;
        };
        let store = PgStore::connect(&crate::PgOptions {
            schema: schema.name.clone(),
            ..crate::PgOptions::new(&schema.url)
        })
        .await
        .expect("connect");
        let raw = errand_testkit::pg_connect(&schema.url)
            .await
            .expect("raw connection");
        raw.batch_execute(&format!(
            "SET search_path TO \"{}\"; ALTER TABLE jobs SET (autovacuum_enabled = false)",
            schema.name
        ))
        .await
        .expect("search path, no autovacuum");
        let mut client = store.client().await.expect("a connection");

        // Grown a little at a time up to 31 pages: never analyzed.
        while pages(&raw).await.0 < 31 {
            assert!(analyze_grown(&mut client).await.expect("look").is_empty());
            insert(&store, 25).await;
        }
        assert_eq!(pages(&raw).await, (31, 0), "analyzed below 32 pages");
        assert!(analyze_grown(&mut client).await.expect("look").is_empty());
        while pages(&raw).await.0 < 32 {
            insert(&store, 25).await;
        }
        assert_eq!(
            analyze_grown(&mut client).await.expect("look"),
            vec!["jobs".to_string()]
        );
        let (on_disk, recorded) = pages(&raw).await;
        assert_eq!(i64::from(recorded), on_disk);

        // Not again until it has doubled.
        while pages(&raw).await.0 < 2 * on_disk {
            assert!(analyze_grown(&mut client).await.expect("look").is_empty());
            insert(&store, 100).await;
        }
        assert_eq!(analyze_grown(&mut client).await.expect("look").len(), 1);
        drop(client);
        drop(store);
    }
}
