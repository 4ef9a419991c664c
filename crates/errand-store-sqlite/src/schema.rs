//! Embedded migrations, run at start. `PRAGMA user_version` records how many have run.

use rusqlite::Connection;

use crate::fault::QResult;

/// Every migration in order. Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_nodes.sql"),
    include_str!("../migrations/0003_schedules.sql"),
    include_str!("../migrations/0004_attempt_lease_token.sql"),
    include_str!("../migrations/0005_schedule_slot_pruning.sql"),
    include_str!("../migrations/0006_list_reads.sql"),
    include_str!("../migrations/0007_script_host.sql"),
    include_str!("../migrations/0008_results.sql"),
    include_str!("../migrations/0009_ordering.sql"),
    include_str!("../migrations/0010_flows.sql"),
    include_str!("../migrations/0011_queue_list.sql"),
    include_str!("../migrations/0012_tokens_audit.sql"),
    include_str!("../migrations/0013_job_secrets.sql"),
    include_str!("../migrations/0014_token_sessions_end.sql"),
    include_str!("../migrations/0015_schedules_fire_ahead.sql"),
    include_str!("../migrations/0016_finished_jobs_index.sql"),
];

/// The file's migration count (`PRAGMA user_version`) and this build's.
pub(crate) fn version(conn: &Connection) -> QResult<errand_store::SchemaVersion> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(errand_store::SchemaVersion {
        applied: u32::try_from(applied).unwrap_or(0),
        expected: u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX),
    })
}

/// Brings the schema up to date in one transaction per migration.
pub(crate) fn migrate(conn: &mut Connection) -> QResult<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = index + 1, "applied SQLite migration");
    }
    Ok(())
}
