//! Rows that cannot be read back are `Corrupt` (500, a bug to look at), never `Unavailable`
//! (503, "retry"): the same classification as on SQLite.

mod common;

use std::time::Duration;

use errand_core::{JobId, QueueName};
use errand_store::conformance::new_job;
use errand_store::{JobClaimParams, JobInsertManyParams, Store, StoreError};
use errand_store_postgres::PgStore;
use errand_testkit::PgSchema;

/// A store on a fresh schema with one claimed job (so it has an attempt), and a raw client
/// on the same schema to damage rows with.
async fn store_with_a_claimed_job(
    test: &str,
) -> Option<(PgSchema, PgStore, tokio_postgres::Client, JobId)> {
    let (schema, store, client) = common::open(test).await?;
    let job = new_job("default", "k");
    let id = job.id;
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![job],
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
    let claimed = store
        .job_claim(JobClaimParams {
            queue: QueueName::parse("default").expect("queue"),
            worker: "w".into(),
            max: 1,
            lease: Duration::from_secs(60),
            kinds: vec![],
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    Some((schema, store, client, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_that_does_not_decode_is_corrupt() {
    let Some((_schema, store, raw, id)) =
        store_with_a_claimed_job("a_column_that_does_not_decode_is_corrupt").await
    else {
        return;
    };
    // The code reads `priority` as a 32-bit integer; a 64-bit column no longer decodes.
    raw.batch_execute("ALTER TABLE jobs ALTER COLUMN priority TYPE bigint")
        .await
        .expect("alter");
    let read = store.job_get(id).await;
    assert!(
        matches!(read, Err(StoreError::Corrupt(_))),
        "a row that does not decode was answered {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_attempt_outcome_is_corrupt_not_failed() {
    let Some((_schema, store, raw, id)) =
        store_with_a_claimed_job("an_unknown_attempt_outcome_is_corrupt_not_failed").await
    else {
        return;
    };
    raw.execute(
        "UPDATE job_attempts SET outcome = 'exploded' WHERE job_id = $1",
        &[&id.0],
    )
    .await
    .expect("damage");
    let read = store.job_attempt_list(id).await;
    assert!(
        matches!(read, Err(StoreError::Corrupt(_))),
        "an unknown outcome was answered {read:?}"
    );
}
