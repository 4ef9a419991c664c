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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use errand_store::StoreError;

use crate::fault::{QResult, RowExt};
use crate::sole_task::SoleTask;

/// Smallest size, in pages of 8 KiB, at which the table is analyzed (about 1,500 small
/// jobs), below which reading every page costs about as little as any plan.
const MIN_PAGES: i64 = 32;

/// How long a node waits before looking again after a look failed (a statement timeout
/// shorter than the `ANALYZE`, say), so that a failure is not repeated every second.
const AFTER_FAILURE: Duration = Duration::from_secs(60);

/// Whether `jobs` has grown to be analyzed, and this role may analyze it (it owns it, is a
/// member of its owner's role, or is a superuser). Only `jobs`: the costliest plans (every
/// settle of several reads it by id) depend on its size, and attempts and events were read
/// by index whatever their size in the same measurement; each `ANALYZE` has every backend
/// plan the statements that read the table again.
const GROWN: &str = "SELECT EXISTS (SELECT 1 FROM pg_class c \
     WHERE c.oid = to_regclass('jobs') AND pg_has_role(c.relowner, 'USAGE') \
       AND pg_relation_size(c.oid) / current_setting('block_size')::bigint \
         >= GREATEST($1::bigint, 2 * c.relpages::bigint))";

/// One node's look at a time per schema: a node that finds another looking skips its turn
/// (the table's recorded size tells it afterwards that nothing is left to do).
const ONE_AT_A_TIME: &str =
    "SELECT pg_try_advisory_xact_lock(hashtext('errand analyze ' || current_schema()))";

/// Asks PostgreSQL to analyze `jobs` when its size doubled since PostgreSQL last recorded
/// it (or it reached [`MIN_PAGES`] without a record); true when it asked. The `ANALYZE`
/// runs in a transaction holding [`ONE_AT_A_TIME`]'s lock, taken only when a first read
/// finds something to do; none runs while another node looks. A table another session is
/// vacuuming or analyzing is skipped (`SKIP_LOCKED`).
pub(crate) async fn analyze_grown(client: &mut deadpool_postgres::Object) -> QResult<bool> {
    let grown = client.prepare_cached(GROWN).await?;
    // Most looks find nothing: one read, without a transaction or the lock.
    if !client
        .query_one(&grown, &[&MIN_PAGES])
        .await?
        .column::<bool>(0)?
    {
        return Ok(false);
    }
    let tx = client.transaction().await?;
    // Again under the lock: another node may have analyzed it meanwhile.
    let asked = tx.query_one(ONE_AT_A_TIME, &[]).await?.column::<bool>(0)?
        && tx
            .query_one(&grown, &[&MIN_PAGES])
            .await?
            .column::<bool>(0)?;
    if asked {
        tx.batch_execute("ANALYZE (SKIP_LOCKED) jobs").await?;
    }
    tx.commit().await?;
    Ok(asked)
}

/// Starts [`analyze_grown`] beside the count folds: one look at a time per node, none for
/// [`AFTER_FAILURE`] after a failed one. A failure is logged, not returned: only the plans'
/// cost waits for the next look, or for autovacuum.
#[derive(Default)]
pub(crate) struct GrowthWatch {
    look: SoleTask,
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
        if waiting {
            return;
        }
        let pool = pool.clone();
        let not_before = self.not_before.clone();
        self.look.start(async move {
            match async { analyze_grown(&mut pool.get().await?).await }.await {
                Ok(true) => tracing::debug!("asked PostgreSQL to analyze jobs, which doubled in size"),
                Ok(false) => {}
                Err(e) => {
                    if let Ok(mut t) = not_before.lock() {
                        *t = Some(Instant::now() + AFTER_FAILURE);
                    }
                    tracing::warn!(error = %StoreError::from(e), "could not analyze the jobs table; plans may read it whole until autovacuum does");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use errand_store::conformance::enqueue_ready;

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
        enqueue_ready(store, "default", "k", count).await;
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
            assert!(!analyze_grown(&mut client).await.expect("look"));
            insert(&store, 25).await;
        }
        assert_eq!(pages(&raw).await, (31, 0), "analyzed below 32 pages");
        assert!(!analyze_grown(&mut client).await.expect("look"));
        while pages(&raw).await.0 < 32 {
            insert(&store, 25).await;
        }
        assert!(analyze_grown(&mut client).await.expect("look"));
        let (on_disk, recorded) = pages(&raw).await;
        assert_eq!(i64::from(recorded), on_disk);

        // Not again until it has doubled.
        while pages(&raw).await.0 < 2 * on_disk {
            assert!(!analyze_grown(&mut client).await.expect("look"));
            insert(&store, 100).await;
        }
        assert!(analyze_grown(&mut client).await.expect("look"));
        drop(client);
        drop(store);
    }
}
