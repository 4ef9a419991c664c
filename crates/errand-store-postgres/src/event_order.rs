//! Against a real PostgreSQL: the event log is read in the numeric order of its commit
//! ids. The statements select the id as text (`tx::text`), and an `ORDER BY tx` there names
//! that text column, which sorts `"100"` before `"99"`: a page would skip or repeat events
//! wherever the ids gain a digit, and finding the head would sort the whole log.

use errand_core::{EventBody, EventId, JobId};
use errand_store::{EventPruneParams, Store};
use errand_testkit::PgSchema;

use crate::{PgOptions, PgStore};

/// Commit ids on both sides of a new digit, inserted out of order. All are older than any
/// transaction still running, so the log counts them as settled.
const IDS: [u64; 4] = [100, 9, 99, 10];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_is_read_in_numeric_commit_order() {
    let Some(schema) = PgSchema::create("the_event_log_is_read_in_numeric_commit_order").await
    else {
        return;
    };
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        ..PgOptions::new(&schema.url)
    })
    .await
    .expect("connect");
    let client = store.client().await.expect("a connection");
    let data = serde_json::to_string(&EventBody::schedule_fired("s", 0, JobId::new(), 0))
        .expect("event json");
    for tx in IDS {
        client
            .execute(
                "INSERT INTO events (tx, at, type, data) VALUES ($1::text::xid8, errand_now(), 'schedule.fired', $2)",
                &[&tx.to_string(), &data],
            )
            .await
            .expect("insert an event");
    }
    let mut sorted = IDS;
    sorted.sort_unstable();

    let head = store.event_head().await.expect("head").expect("a head");
    assert_eq!(head.tx, 100, "the head is the newest commit");
    let page = store.event_read(None, 2).await.expect("read");
    let first: Vec<u64> = page.events.iter().map(|e| e.id.tx).collect();
    assert_eq!(first, sorted[..2], "the first page");
    let after = page.events.last().map(|e| e.id);
    let rest = store.event_read(after, 10).await.expect("read");
    let rest: Vec<u64> = rest.events.iter().map(|e| e.id.tx).collect();
    assert_eq!(rest, sorted[2..], "the page after it");

    // Pruning takes the oldest prefix: beyond the newest three, one goes, and it is tx 9.
    let pruned = store
        .event_prune(EventPruneParams {
            older_than: std::time::Duration::from_secs(3600),
            keep_at_most: 3,
            keep_after: None,
            limit: 100,
        })
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    let left = store.event_read(None, 10).await.expect("read");
    assert_eq!(
        left.events.iter().map(|e| e.id.tx).collect::<Vec<_>>(),
        sorted[1..]
    );
    assert_eq!(
        left.missed_through, None,
        "read from the start, nothing is missed"
    );
    let behind = store
        .event_read(Some(EventId { tx: 1, seq: 0 }), 10)
        .await
        .expect("read");
    assert_eq!(
        behind.missed_through.map(|id| id.tx),
        Some(9),
        "a reader behind the prune is told what it missed"
    );
}
