//! PostgreSQL keeps queue counts as signed rows that every write appends and a fold sums
//! up; the fold also has the folded rows' space reclaimed, so count reads stay small
//! however many writes came before.

use std::time::Duration;

use errand_store::Store;
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::{eventually, PgDatabase};

/// The table's size on disk, in bytes.
async fn size(raw: &tokio_postgres::Client) -> i64 {
    raw.query_one("SELECT pg_relation_size('queue_counts')", &[])
        .await
        .expect("size")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_of_many_count_rows_gives_their_space_back() {
    // A database of its own: a transaction of another test in the same database could
    // keep the deleted rows alive for a while, and nothing would be reclaimed.
    let Some(db) = PgDatabase::create("queue count rows").await else {
        return;
    };
    let store = PgStore::connect(&PgOptions::new(&db.url))
        .await
        .expect("connect");
    let raw = errand_testkit::pg_connect(&db.url)
        .await
        .expect("raw connection");
    raw.batch_execute("SET search_path TO errand")
        .await
        .expect("search path");
    // Only errand's own vacuum may reclaim anything here, not autovacuum passing by.
    raw.batch_execute("ALTER TABLE queue_counts SET (autovacuum_enabled = false)")
        .await
        .expect("no autovacuum");
    // What 30,000 write statements leave behind: a job made ready and taken, 15,000 times.
    raw.batch_execute(
        "INSERT INTO queue_counts (queue, state, n) \
         SELECT 'busy', 'available', CASE WHEN i % 2 = 0 THEN 1 ELSE -1 END \
         FROM generate_series(1, 30000) AS i",
    )
    .await
    .expect("count rows");
    let before = size(&raw).await;
    let folded = store.queue_counts_fold().await.expect("fold");
    assert!(folded >= 30_000, "folded {folded}");
    // Without errand's vacuum the dead rows keep every page; the fold starts one beside it.
    eventually(
        "queue_counts to give its pages back",
        Duration::from_secs(60),
        || async { (size(&raw).await * 10 < before).then_some(()) },
    )
    .await;
    drop(store);
}
