//! PostgreSQL keeps queue counts as signed rows that every write appends and a fold sums
//! up; the fold also reclaims the space of what it folded, so count reads stay small
//! however many writes came before.

mod common;

use common::open;
use errand_store::Store;

/// The table's size on disk, in bytes.
async fn size(raw: &tokio_postgres::Client) -> i64 {
    raw.query_one("SELECT pg_relation_size('queue_counts')", &[])
        .await
        .expect("size")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_of_many_count_rows_gives_their_space_back() {
    let Some((_schema, store, raw)) = open("queue count rows").await else {
        return;
    };
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
    let after = size(&raw).await;
    // Without the vacuum the dead rows keep every page until autovacuum comes by.
    assert!(
        after * 10 < before,
        "queue_counts is {after} bytes after the fold, {before} before"
    );
}
