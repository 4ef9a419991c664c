//! The store's transactions send `BEGIN` with their first statement and their events with
//! their `COMMIT`. What that must not change: a transaction whose last insert fails keeps
//! nothing and answers its error, and one abandoned half-way leaves nothing behind for the
//! next caller on its connection.

use std::time::Duration;

#[allow(dead_code)] // this binary opens with its own pool size only
mod common;

use common::open_with_pool;
use errand_store::conformance::new_job;
use errand_store::{JobInsertManyParams, Store, StoreError};
use errand_store_postgres::PgStore;
use errand_testkit::{eventually, PgSchema};

/// A store with the smallest pool (two connections; an idle one is reused before another
/// is opened, so a second call reuses the first call's connection unless it was kept
/// out) and a raw connection on the same schema.
async fn open_small_pool(test: &str) -> Option<(PgSchema, PgStore, tokio_postgres::Client)> {
    open_with_pool(test, 1).await
}

async fn insert(store: &PgStore, kind: &str) -> Result<(), StoreError> {
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![new_job("q", kind)],
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .map(|_| ())
}

async fn jobs_of_kind(raw: &tokio_postgres::Client, kind: &str) -> i64 {
    raw.query_one("SELECT count(*) FROM jobs WHERE kind = $1", &[&kind])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_events_are_refused_keeps_nothing_and_says_so() {
    let test = "a_transaction_whose_events_are_refused_keeps_nothing_and_says_so";
    let Some((_schema, store, raw)) = open_small_pool(test).await else {
        return;
    };
    raw.batch_execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.data LIKE '%poison-kind%' THEN RAISE EXCEPTION 'poisoned event'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON events \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await
    .expect("a trigger that refuses one kind's events");

    let refused = insert(&store, "poison-kind").await;
    assert!(
        refused.is_err(),
        "the insert whose event the database refused was answered {refused:?}"
    );
    assert_eq!(
        jobs_of_kind(&raw, "poison-kind").await,
        0,
        "the job of a refused event was kept"
    );

    // The connection serves the next call outside any transaction: its job is committed
    // and visible to another connection.
    insert(&store, "plain-kind")
        .await
        .expect("the next insert on the connection");
    assert_eq!(jobs_of_kind(&raw, "plain-kind").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_abandoned_half_way_leaves_nothing_to_the_next_caller() {
    let test = "a_transaction_abandoned_half_way_leaves_nothing_to_the_next_caller";
    let Some((_schema, store, raw)) = open_small_pool(test).await else {
        return;
    };
    let store = std::sync::Arc::new(store);
    // Inserting a job of kind `held-kind` waits for an advisory lock the raw connection holds.
    let key: i64 = 0x5eed_0000 + i64::from(std::process::id() & 0xffff);
    raw.batch_execute(&format!(
        "CREATE FUNCTION wait_for_key() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.kind = 'held-kind' THEN PERFORM pg_advisory_xact_lock({key}); END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER wait_for_key BEFORE INSERT ON jobs \
         FOR EACH ROW EXECUTE FUNCTION wait_for_key(); \
         SELECT pg_advisory_lock({key});"
    ))
    .await
    .expect("a trigger that waits for the key, and the key held");

    let held = tokio::spawn({
        let store = store.clone();
        async move { insert(&store, "held-kind").await }
    });
    let waiting = format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
         AND objid = {key} AND classid = 0"
    );
    eventually(
        "the insert waits for the key inside its transaction",
        Duration::from_secs(20),
        || async {
            let n: i64 = raw.query_one(&waiting, &[]).await.ok()?.get(0);
            (n == 1).then_some(())
        },
    )
    .await;
    held.abort();
    assert!(held.await.is_err(), "the abandoned call was cancelled");

    // The abandoned transaction's connection was not given to the next caller: this
    // insert neither waits behind it nor joins its transaction.
    tokio::time::timeout(Duration::from_secs(20), insert(&store, "plain-kind"))
        .await
        .expect("the next call waited behind the abandoned transaction")
        .expect("the next call");
    assert_eq!(jobs_of_kind(&raw, "plain-kind").await, 1);

    // Let the abandoned statement finish: the rollback sent after it ends its transaction.
    raw.batch_execute(&format!("SELECT pg_advisory_unlock({key})"))
        .await
        .expect("release the key");
    let holders = format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {key} AND classid = 0"
    );
    eventually(
        "the abandoned transaction ends",
        Duration::from_secs(20),
        || async {
            let n: i64 = raw.query_one(&holders, &[]).await.ok()?.get(0);
            (n == 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        jobs_of_kind(&raw, "held-kind").await,
        0,
        "the abandoned transaction's job was committed"
    );
}
