//! The jobs table, once it doubled in size since PostgreSQL last recorded it, is analyzed
//! beside the next count fold, so that statements planned while it was small are planned
//! again with the size it has (a settle of several jobs read the whole table otherwise).
//! When exactly (from 32 pages, then at each doubling) is tested in the crate
//! (`planner_stats::tests`).

mod common;

use std::time::Duration;

use errand_store::conformance::enqueue_ready;
use errand_store::Store;
use errand_testkit::eventually;

/// The pages of `jobs` PostgreSQL last recorded (0: never).
async fn recorded_pages(raw: &tokio_postgres::Client) -> i32 {
    raw.query_one(
        "SELECT relpages FROM pg_class WHERE oid = to_regclass('jobs')",
        &[],
    )
    .await
    .expect("jobs size")
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_has_the_grown_jobs_table_analyzed() {
    let Some((_schema, store, raw)) = common::open("planner stats").await else {
        return;
    };
    // Only errand may analyze here, not autovacuum passing by.
    raw.batch_execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
        .await
        .expect("no autovacuum");
    for _ in 0..8 {
        enqueue_ready(&store, "default", "k", 500).await;
    }
    assert_eq!(recorded_pages(&raw).await, 0, "analyzed before any fold");
    store.queue_counts_fold().await.expect("fold");
    eventually(
        "the jobs table to be analyzed",
        Duration::from_secs(30),
        || async { (recorded_pages(&raw).await >= 32).then_some(()) },
    )
    .await;
    drop(store);
}
