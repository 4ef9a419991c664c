//! Keeps PostgreSQL's planner statistics in step with the tables that grow with the work.
//!
//! errand's statements are prepared once per connection, and after five calls PostgreSQL may
//! keep a generic plan for one: costed once, with the table sizes of that moment, and kept
//! until the table's statistics change. On a new store that moment is an empty table, where
//! reading every page is the cheapest plan; the plan stays while the table grows to
//! thousands of pages, until autovacuum's next `ANALYZE` (it looks once a minute, and
//! analyzes after a tenth of the table changed). Measured on the benchmark's fresh schema at
//! 1,000 jobs/s: every settle of several jobs read the whole `jobs` table through a hash
//! join (1,401 sequential scans and 8.2 million rows read in 5 s). Analyzing the table each
//! time its size has doubled since its last statistics makes PostgreSQL plan again with the
//! size it has, a few times in the table's life (at 32 pages, 64, 128, …).

use deadpool_postgres::GenericClient;
use errand_store::StoreError;

use crate::fault::{QResult, RowExt};

/// Smallest size, in pages of 8 KiB, at which a table is analyzed: a few hundred jobs,
/// below which reading every page costs as little as any plan.
pub(crate) const MIN_PAGES: i64 = 32;

/// The tables whose size the costliest plans depend on: `jobs`, read by id in every settle
/// of several. (Attempts and events, read by index whatever their size in the same
/// measurement, are left to autovacuum: each `ANALYZE` has every backend plan the
/// statements that read the table again.)
const GROWN: &str = "SELECT t::text FROM unnest(ARRAY[to_regclass('jobs')]) AS t \
     JOIN pg_class c ON c.oid = t \
     WHERE pg_relation_size(t) / current_setting('block_size')::bigint \
         >= GREATEST($1::bigint, 2 * c.relpages::bigint)";

/// Analyzes each of the growing tables whose size doubled since its statistics were taken
/// (or that reached [`MIN_PAGES`] without any), and returns their names. A table another
/// session is vacuuming or analyzing is skipped (`SKIP_LOCKED`); the next look finds it
/// again. Needs the role that owns the tables (the one errand's migrations ran as); another
/// role gets a warning from PostgreSQL and the statistics stay as they were.
pub(crate) async fn analyze_grown(client: &impl GenericClient) -> QResult<Vec<String>> {
    let stmt = client.prepare_cached(GROWN).await?;
    let rows = client.query(&stmt, &[&MIN_PAGES]).await?;
    let mut analyzed = Vec::with_capacity(rows.len());
    for row in &rows {
        // A name from the catalog's own `regclass` output, quoted where it needs to be.
        let table: String = row.column(0)?;
        client
            .batch_execute(&format!("ANALYZE (SKIP_LOCKED) {table}"))
            .await?;
        analyzed.push(table);
    }
    Ok(analyzed)
}

/// Runs [`analyze_grown`] on a pooled connection; a failure is logged, not returned, since
/// only the plans' cost waits for the next look.
pub(crate) async fn refresh(pool: &deadpool_postgres::Pool) {
    let run: QResult<Vec<String>> = async { analyze_grown(&pool.get().await?).await }.await;
    match run {
        Ok(tables) if !tables.is_empty() => {
            tracing::debug!(?tables, "analyzed tables that doubled in size");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %StoreError::from(e), "could not analyze grown tables; plans may read whole tables until autovacuum does");
        }
    }
}
