//! A schema written by the previous version is upgraded in place: the tag index and the
//! queue counts are filled from the jobs already there, and kept from then on.

use std::sync::Arc;

use errand_store::conformance::{assert_upgraded, previous_version_jobs, OldJob};
use errand_store::SharedStore;
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;

/// The migrations of the previous version, as it shipped them.
const PREVIOUS: &[&str] = &[
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_schedules.sql"),
    include_str!("../migrations/0003_attempt_lease_token.sql"),
    include_str!("../migrations/0004_schedule_slot_pruning.sql"),
];

/// Lays out `schema` as the previous version left it: its migrations recorded, and `jobs`
/// written with plain SQL.
async fn previous_version_schema(schema: &PgSchema, jobs: &[OldJob]) {
    let client = errand_testkit::pg_connect(&schema.url)
        .await
        .expect("connect");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; SET search_path TO \"{0}\"; \
             CREATE TABLE errand_migrations (version integer PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
            schema.name
        ))
        .await
        .expect("schema");
    for (i, sql) in PREVIOUS.iter().enumerate() {
        client.batch_execute(sql).await.expect("old migration");
        client
            .execute(
                "INSERT INTO errand_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .await
            .expect("record");
    }
    client
        .batch_execute("INSERT INTO queues (name, created_at) VALUES ('a', 0), ('b', 0)")
        .await
        .expect("queues");
    for (id, queue, state, tags) in jobs {
        client
            .execute(
                "INSERT INTO jobs (id, kind, queue, state, payload, priority, run_at, max_attempts, \
                 tags, created_at, updated_at) \
                 VALUES ($1, 'old', $2, $3, '{}', 0, 0, 3, $4::text::jsonb, 0, 0)",
                &[&id.0, queue, state, tags],
            )
            .await
            .expect("job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_version_schema_is_upgraded_and_backfilled() {
    let Some(schema) = PgSchema::create("a_previous_version_schema_is_upgraded").await else {
        return;
    };
    let jobs = previous_version_jobs();
    previous_version_schema(&schema, &jobs).await;
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size: 2,
        ..PgOptions::new(&schema.url)
    })
    .await
    .expect("the old schema opens");
    let store: SharedStore = Arc::new(store);
    assert_upgraded(&store, &jobs).await;
}
