//! A settle batch in which one entry hits a database error fails as a whole and keeps
//! nothing, as on SQLite (crates/errand-store-sqlite/tests/settle_batch.rs); only refusals
//! (a stale token, a missing job) are answered per entry.

mod common;

use std::time::Duration;

use errand_core::{JobState, QueueName, RetryPolicy};
use errand_store::conformance::new_job;
use errand_store::{
    ClaimedJob, JobClaimParams, JobInsertManyParams, JobSettleManyParams, Settlement, Store,
    StoreError,
};
use errand_store_postgres::PgStore;
use errand_testkit::PgSchema;

fn batch(done: &ClaimedJob, failed: &ClaimedJob) -> JobSettleManyParams {
    JobSettleManyParams {
        settlements: vec![
            Settlement::Complete {
                id: done.job.id,
                lease_token: done.lease_token,
                result: None,
                report: None,
                session_state: Default::default(),
            },
            Settlement::Fail {
                id: failed.job.id,
                lease_token: failed.lease_token,
                error: "boom".into(),
                retry_in: None,
                dead: true,
                report: None,
            },
        ],
        retry_policy: RetryPolicy::default(),
    }
}

/// A store with two claimed jobs, and a raw connection to the same schema; `None` when no
/// PostgreSQL is reachable (the skip is reported).
async fn two_claimed(
    test: &str,
) -> Option<(
    PgSchema,
    PgStore,
    tokio_postgres::Client,
    ClaimedJob,
    ClaimedJob,
)> {
    let (schema, store, raw) = common::open(test).await?;
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![new_job("default", "k"), new_job("default", "k")],
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
    let mut claimed = store
        .job_claim(JobClaimParams {
            queue: QueueName::parse("default").expect("queue"),
            worker: "w".into(),
            max: 2,
            lease: Duration::from_secs(60),
            kinds: vec![],
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let failed = claimed.pop().expect("second");
    let done = claimed.pop().expect("first");
    Some((schema, store, raw, done, failed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_in_one_entry_fails_the_whole_batch() {
    let Some((_schema, store, raw, done, failed)) =
        two_claimed("a_database_error_in_one_entry_fails_the_whole_batch").await
    else {
        return;
    };
    // The database refuses to write the second job: a database error, not a store rule.
    raw.batch_execute(&format!(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected'; END $$; \
         CREATE TRIGGER boom BEFORE UPDATE ON jobs FOR EACH ROW \
             WHEN (NEW.id = '{}') EXECUTE FUNCTION boom()",
        failed.job.id
    ))
    .await
    .expect("trigger");

    let outcome = store.job_settle_many(batch(&done, &failed)).await;
    assert!(
        matches!(&outcome, Err(e) if !e.is_refusal()),
        "the batch answered {outcome:?}"
    );
    for c in [&done, &failed] {
        let job = store.job_get(c.job.id).await.expect("get");
        assert_eq!(
            job.state,
            JobState::Running,
            "nothing of the batch was kept"
        );
    }

    // The caller heard the error and asks again once the database lets it.
    raw.batch_execute("DROP TRIGGER boom ON jobs")
        .await
        .expect("drop trigger");
    let out = store
        .job_settle_many(batch(&done, &failed))
        .await
        .expect("settle");
    assert_eq!(
        out[0].as_ref().expect("first").job.state,
        JobState::Succeeded
    );
    assert_eq!(out[1].as_ref().expect("second").job.state, JobState::Dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_in_one_entry_fails_the_whole_batch() {
    let Some((_schema, store, raw, done, failed)) =
        two_claimed("a_corrupt_record_in_one_entry_fails_the_whole_batch").await
    else {
        return;
    };
    // The second job's failure is settled; a repeat of it reads the job back, whose row
    // is then damaged: a store error that is no refusal.
    let mut first = batch(&done, &failed);
    first.settlements.remove(0);
    store.job_settle_many(first).await.expect("fail the second");
    raw.batch_execute(&format!(
        "UPDATE jobs SET kind = '' WHERE id = '{}'",
        failed.job.id
    ))
    .await
    .expect("damage");

    let outcome = store.job_settle_many(batch(&done, &failed)).await;
    assert!(
        matches!(&outcome, Err(StoreError::Corrupt(_))),
        "the batch answered {outcome:?}"
    );
    let job = store.job_get(done.job.id).await.expect("get");
    assert_eq!(
        job.state,
        JobState::Running,
        "nothing of the batch was kept"
    );
}
