//! Rows that cannot be read back are `Corrupt` (500, a bug to look at), never read as
//! something they are not: the same classification as on PostgreSQL.

use std::time::Duration;

use errand_core::{JobId, NewJob, QueueName};
use errand_store::conformance::new_job;
use errand_store::{JobClaimParams, JobInsertManyParams, Store, StoreError};
use errand_store_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_attempt_outcome_is_corrupt_not_failed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteOptions::in_dir(dir.path());
    let store = SqliteStore::open(&options).expect("open");
    let id = JobId::new();
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![NewJob {
                id,
                ..new_job("default", "k")
            }],
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
    let raw = rusqlite::Connection::open(&options.path).expect("raw connection");
    raw.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let damaged = raw
        .execute("UPDATE job_attempts SET outcome = 'exploded'", [])
        .expect("damage");
    assert_eq!(damaged, 1);
    let read = store.job_attempt_list(id).await;
    assert!(
        matches!(read, Err(StoreError::Corrupt(_))),
        "an unknown outcome was answered {read:?}"
    );
}
