//! Embedded migrations, run at start under an advisory lock so that nodes starting
//! together do not race. `errand_migrations` records which have run.

use errand_store::StoreOrigin;
use tokio_postgres::Client;

use crate::fault::{QResult, RowExt};

/// Every migration in order. Append only.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_schedules.sql"),
    include_str!("../migrations/0003_attempt_lease_token.sql"),
    include_str!("../migrations/0004_schedule_slot_pruning.sql"),
    include_str!("../migrations/0005_list_reads.sql"),
    include_str!("../migrations/0006_script_host.sql"),
    include_str!("../migrations/0007_results.sql"),
    include_str!("../migrations/0008_ordering.sql"),
    include_str!("../migrations/0009_flows.sql"),
    include_str!("../migrations/0010_queue_list.sql"),
    include_str!("../migrations/0011_tokens_audit.sql"),
    include_str!("../migrations/0012_job_secrets.sql"),
    include_str!("../migrations/0013_token_sessions_end.sql"),
    include_str!("../migrations/0014_schedules_fire_ahead.sql"),
];

/// Any constant works as long as every node uses the same one; this is "errand" in ASCII.
const MIGRATION_LOCK: i64 = 0x6572_7261_6e64;

/// The schema's latest applied migration (`errand_migrations`) and this build's.
pub(crate) async fn version(
    client: &impl deadpool_postgres::GenericClient,
) -> QResult<errand_store::SchemaVersion> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM errand_migrations",
            &[],
        )
        .await?;
    let applied: i32 = row.column(0)?;
    Ok(errand_store::SchemaVersion {
        applied: u32::try_from(applied).unwrap_or(0),
        expected: u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX),
    })
}

/// Creates the schema if needed and brings it up to date; says whether it had to start from
/// nothing (no migration had run: the schema is new, or was emptied).
/// Whether `schema` holds an errand store (its migrations table), without creating
/// anything.
pub(crate) async fn present(client: &Client, schema: &str) -> QResult<bool> {
    let row = client
        .query_one(
            "SELECT to_regclass(format('%I.errand_migrations', $1::text)) IS NOT NULL",
            &[&schema],
        )
        .await?;
    Ok(row.get(0))
}

pub(crate) async fn migrate(client: &mut Client, schema: &str) -> QResult<StoreOrigin> {
    // The lock comes first: even `CREATE SCHEMA IF NOT EXISTS` races when two nodes run it
    // at once (one of them fails on the catalogue's unique index).
    client
        .query_one("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let outcome = run(client, schema).await;
    // Unlock even when a migration failed; the session ends soon after anyway.
    client
        .query_one("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    outcome
}

async fn run(client: &mut Client, schema: &str) -> QResult<StoreOrigin> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET search_path TO \"{schema}\""
        ))
        .await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS errand_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM errand_migrations",
            &[],
        )
        .await?;
    let current: i32 = row.column(0)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO errand_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(migration = version, "applied PostgreSQL migration");
    }
    Ok(if current == 0 {
        StoreOrigin::Created
    } else {
        StoreOrigin::Existing
    })
}
