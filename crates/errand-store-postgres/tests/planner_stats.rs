//! A table that doubled in size since PostgreSQL last took its statistics is analyzed by
//! the next count fold, so that statements planned while it was small are planned again
//! with the size it has (a settle of several jobs read the whole `jobs` table otherwise).

mod common;

use std::time::Duration;

use errand_store::conformance::new_job;
use errand_store::{JobInsertManyParams, Store};
use errand_store_postgres::PgStore;

/// `jobs`' pages on disk, and the pages and rows its statistics last saw (`-1` rows: never
/// analyzed).
async fn jobs_size(raw: &tokio_postgres::Client) -> (i64, i32, f32) {
    let row = raw
        .query_one(
            "SELECT pg_relation_size('jobs') / current_setting('block_size')::bigint, \
                 relpages, reltuples FROM pg_class WHERE oid = to_regclass('jobs')",
            &[],
        )
        .await
        .expect("jobs size");
    (row.get(0), row.get(1), row.get(2))
}

async fn insert(store: &PgStore, count: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        store
            .job_insert_many(JobInsertManyParams {
                jobs: chunk.iter().map(|_| new_job("default", "k")).collect(),
                idempotency_window: Duration::from_secs(60),
            })
            .await
            .expect("insert");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_doubled_is_analyzed_by_the_next_fold() {
    let Some((_schema, store, raw)) = common::open("planner stats").await else {
        return;
    };
    // Only errand may analyze here, not autovacuum passing by.
    raw.batch_execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
        .await
        .expect("no autovacuum");

    // A small table is left alone: reading it whole is as cheap as any plan.
    insert(&store, 20).await;
    store.queue_counts_fold().await.expect("fold");
    let (_, pages, rows) = jobs_size(&raw).await;
    assert_eq!((pages, rows), (0, -1.0), "a small table was analyzed");

    // Grown past the smallest size worth it, `jobs` is analyzed by the fold itself.
    insert(&store, 4_000).await;
    let (on_disk, ..) = jobs_size(&raw).await;
    assert!(
        on_disk >= 64,
        "the test needs a larger table: {on_disk} pages"
    );
    store.queue_counts_fold().await.expect("fold");
    let (on_disk, pages, rows) = jobs_size(&raw).await;
    assert_eq!(
        i64::from(pages),
        on_disk,
        "statistics not taken after growth"
    );
    assert!(rows >= 4_000.0, "statistics saw {rows} rows");

    // Grown by less than its size since, it is not analyzed again.
    insert(&store, 200).await;
    store.queue_counts_fold().await.expect("fold");
    let (grown, again, _) = jobs_size(&raw).await;
    assert!(grown > on_disk, "the table did not grow: {grown} pages");
    assert_eq!(again, pages, "analyzed again before the table doubled");
    drop(store);
}
