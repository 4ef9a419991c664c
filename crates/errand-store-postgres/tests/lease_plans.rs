//! Statements that act on one leased job find it by its id, however many jobs run and
//! whatever the planner's statistics say about them. The `jobs_leases` partial index (running
//! jobs by lease expiry) must not serve them: when the statistics saw no running jobs, it
//! costs about what the primary key does, yet a range scan of it reads every running job
//! and, until vacuum, every job that ran within the last lease period.

mod common;

use std::time::{Duration, Instant};

use errand_core::{LogStream, NewLogLine, QueueName, RetryPolicy};
use errand_store::conformance::new_job;
use errand_store::{
    ClaimedJob, JobClaimParams, JobHeartbeatParams, JobInsertManyParams, JobLogAppendParams,
    JobSettleManyParams, Settlement, Store,
};

/// Jobs run and completed before the measured statements: what a range scan of
/// `jobs_leases` would step over (their entries stay until vacuum).
const CHURNED: usize = 2_000;

/// Jobs a claim takes at once, and so about how many run at a time.
const IN_FLIGHT: u32 = 16;

/// `(idx_scan, idx_tup_read)` of one index of the test's schema, as the statistics show them.
async fn index_reads(raw: &tokio_postgres::Client, schema: &str, index: &str) -> (i64, i64) {
    let row = raw
        .query_one(
            "SELECT idx_scan, idx_tup_read FROM pg_stat_user_indexes \
             WHERE schemaname = $1 AND indexrelname = $2",
            &[&schema, &index],
        )
        .await
        .expect("index statistics");
    (row.get(0), row.get(1))
}

/// Completes `job` with no result.
fn complete(job: &ClaimedJob) -> Settlement {
    Settlement::Complete {
        id: job.job.id,
        lease_token: job.lease_token,
        result: None,
        report: None,
        session_state: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settles_heartbeats_and_log_appends_read_their_job_by_id() {
    let test = "settles_heartbeats_and_log_appends_read_their_job_by_id";
    let Some((schema, store, raw)) = common::open(test).await else {
        return;
    };
    store
        .job_insert_many(JobInsertManyParams {
            jobs: (0..CHURNED + 2 * IN_FLIGHT as usize)
                .map(|_| new_job("default", "k"))
                .collect(),
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
    let claim = || JobClaimParams {
        queue: QueueName::parse("default").expect("queue"),
        worker: "w".into(),
        max: IN_FLIGHT,
        lease: Duration::from_secs(600),
        kinds: vec![],
    };
    // A worker's life: claim a handful, complete them, again, while the table is new and
    // its statistics see no running job.
    for _ in 0..CHURNED / IN_FLIGHT as usize {
        let got = store.job_claim(claim()).await.expect("claim");
        assert_eq!(got.len(), IN_FLIGHT as usize);
        let settled = store
            .job_settle_many(JobSettleManyParams {
                settlements: got.iter().map(complete).collect(),
                retry_policy: RetryPolicy::default(),
            })
            .await
            .expect("settle");
        assert!(settled.iter().all(Result::is_ok), "{settled:?}");
    }
    let claimed = store.job_claim(claim()).await.expect("claim");
    assert_eq!(claimed.len(), IN_FLIGHT as usize);

    let (attempt_scans, _) = index_reads(&raw, &schema.name, "job_attempts_pkey").await;
    let (_, lease_reads) = index_reads(&raw, &schema.name, "jobs_leases").await;

    let beat = &claimed[0];
    store
        .job_heartbeat(JobHeartbeatParams {
            id: beat.job.id,
            lease_token: beat.lease_token,
            lease: None,
            progress: None,
            checkpoint: None,
        })
        .await
        .expect("heartbeat");
    store
        .job_log_append(JobLogAppendParams {
            owner: beat.job.id.0,
            attempt: beat.job.attempt,
            lease_token: Some(beat.lease_token),
            lines: vec![NewLogLine {
                at: 0,
                stream: LogStream::Stdout,
                line: "hello".into(),
            }],
            keep_head: u32::MAX,
            keep_tail: u32::MAX,
        })
        .await
        .expect("fenced log append");
    let (done, failed) = (&claimed[1], &claimed[2]);
    let settled = store
        .job_settle_many(JobSettleManyParams {
            settlements: vec![
                complete(done),
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
        })
        .await
        .expect("settle");
    assert!(settled.iter().all(Result::is_ok), "{settled:?}");

    // A backend reports its statistics when it goes idle, at most once a second: wait until
    // the settle's attempt updates (by `job_attempts_pkey`) show, so that its other index
    // reads have been reported with them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (scans, _) = index_reads(&raw, &schema.name, "job_attempts_pkey").await;
        if scans >= attempt_scans + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the settle's statistics never showed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, lease_reads_after) = index_reads(&raw, &schema.name, "jobs_leases").await;
    let read = lease_reads_after - lease_reads;
    assert!(
        read < 100,
        "a heartbeat, a fenced log append and two settles read {read} entries of jobs_leases after {CHURNED} jobs ran"
    );
}
