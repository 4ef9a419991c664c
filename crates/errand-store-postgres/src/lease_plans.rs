//! Against a real PostgreSQL: statements that act on leased jobs find them by id, however
//! many jobs run and whatever the planner's statistics say about them. The partial indexes
//! over running jobs (`jobs_leases`, `jobs_running_kind`) must not serve them: when the
//! statistics saw no running jobs, such an index costs about what the primary key does,
//! yet a scan of it reads every running job and, until vacuum, every job that ran within
//! the last lease period (see [`crate::job_write::lease_held`]).

use std::time::Duration;

use deadpool_postgres::Object;
use errand_core::{LogStream, NewLogLine, QueueName, RetryPolicy};
use errand_store::conformance::{complete, complete_together, new_job};
use errand_store::{
    JobClaimParams, JobHeartbeatParams, JobInsertManyParams, JobLogAppendParams,
    JobSettleManyParams, Settlement, Store,
};

use crate::job_write::lease_held;
use crate::one_backend::{one_backend_store, report_statistics};
use crate::PgStore;

/// Jobs run and completed before the measured statements: what a range scan of
/// `jobs_leases` would step over (their entries stay until vacuum).
const CHURNED: usize = 2_000;

/// Jobs a claim takes at once, and so about how many run at a time.
const IN_FLIGHT: u32 = 16;

/// Entries read from the partial indexes over running jobs, as the statistics show them
/// once the store's backend has reported.
async fn running_index_reads(store: &PgStore, held: &Object, schema: &str) -> i64 {
    report_statistics(store).await;
    let row = held
        .query_one(
            "SELECT COALESCE(SUM(idx_tup_read), 0)::bigint FROM pg_stat_user_indexes \
             WHERE schemaname = $1 AND indexrelname IN ('jobs_leases', 'jobs_running_kind')",
            &[&schema],
        )
        .await
        .expect("index statistics");
    row.get(0)
}

/// Asserts that what ran since `before` (a [`running_index_reads`] figure) read few entries
/// of the running jobs' indexes; returns the new figure.
async fn assert_few_reads(
    store: &PgStore,
    held: &Object,
    schema: &str,
    before: i64,
    what: &str,
) -> i64 {
    let now = running_index_reads(store, held, schema).await;
    assert!(
        now - before < 100,
        "{what} read {} entries of the running jobs' indexes after {CHURNED} jobs ran",
        now - before
    );
    now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_on_leased_jobs_read_them_by_id() {
    let Some((schema, store, held)) =
        one_backend_store("statements_on_leased_jobs_read_them_by_id").await
    else {
        return;
    };
    let schema = schema.name.clone();
    store
        .job_insert_many(JobInsertManyParams {
            jobs: (0..CHURNED + 2 * IN_FLIGHT as usize)
                .map(|_| new_job("default", "k"))
                .collect(),
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
    // Statistics taken while nothing runs, as autovacuum's usually are: running jobs are a
    // sliver of a large table.
    held.batch_execute("ANALYZE jobs").await.expect("analyze");
    let claim = || JobClaimParams {
        queue: QueueName::parse("default").expect("queue"),
        worker: "w".into(),
        max: IN_FLIGHT,
        lease: Duration::from_secs(600),
        kinds: vec![],
    };
    // A worker's life: claim a handful, complete them, again.
    for _ in 0..CHURNED / IN_FLIGHT as usize {
        let got = store.job_claim(claim()).await.expect("claim");
        assert_eq!(got.len(), IN_FLIGHT as usize);
        assert_eq!(
            complete_together(&store, &got).await,
            got.len(),
            "completed"
        );
    }
    let claimed = store.job_claim(claim()).await.expect("claim");
    assert_eq!(claimed.len(), IN_FLIGHT as usize);
    let mut reads = running_index_reads(&store, &held, &schema).await;

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
    reads = assert_few_reads(&store, &held, &schema, reads, "a heartbeat").await;

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
    reads = assert_few_reads(&store, &held, &schema, reads, "a fenced log append").await;

    let settle = |settlements: Vec<Settlement>| {
        store.job_settle_many(JobSettleManyParams {
            settlements,
            retry_policy: RetryPolicy::default(),
        })
    };
    let settled = settle(vec![complete(&claimed[1])]).await.expect("settle");
    assert!(settled.iter().all(Result::is_ok), "{settled:?}");
    reads = assert_few_reads(&store, &held, &schema, reads, "a completion").await;

    let failed = &claimed[2];
    let settled = settle(vec![Settlement::Fail {
        id: failed.job.id,
        lease_token: failed.lease_token,
        error: "boom".into(),
        retry_in: None,
        dead: true,
        report: None,
    }])
    .await
    .expect("settle");
    assert!(settled.iter().all(Result::is_ok), "{settled:?}");
    reads = assert_few_reads(&store, &held, &schema, reads, "a failure").await;

    let settled = settle(claimed[3..].iter().map(complete).collect())
        .await
        .expect("settle");
    assert!(settled.iter().all(Result::is_ok), "{settled:?}");
    assert_few_reads(&store, &held, &schema, reads, "a batch of completions").await;
}

/// The partial indexes over running jobs a plan uses, from its `EXPLAIN` lines.
fn running_indexes_in(plan: &[String]) -> Vec<&'static str> {
    ["jobs_leases", "jobs_running_kind"]
        .into_iter()
        .filter(|index| plan.iter().any(|line| line.contains(index)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_partial_index_over_running_jobs_can_serve_a_lease_check() {
    let Some((_schema, _store, held)) =
        one_backend_store("no_partial_index_over_running_jobs_can_serve_a_lease_check").await
    else {
        return;
    };
    // Without the primary key and with sequential scans priced out, the planner takes any
    // index that can serve a condition; rolled back afterwards.
    held.batch_execute(
        "BEGIN; ALTER TABLE jobs DROP CONSTRAINT jobs_pkey CASCADE; SET LOCAL enable_seqscan = off",
    )
    .await
    .expect("set up");
    let plain = "j.state = 'running' AND j.lease_token = $2 AND j.lease_expires_at > errand_now()";
    let ours = lease_held("j.", "$2");
    // One job, and a batch as the settle of many joins it.
    let shapes = [
        "SELECT 1 FROM jobs j WHERE j.id = ($1::uuid[])[1] AND {cond}",
        "SELECT 1 FROM jobs j, UNNEST($1::uuid[]) AS u(id) WHERE j.id = u.id AND {cond}",
    ];
    let ids = vec![uuid::Uuid::nil()];
    let token = uuid::Uuid::nil();
    let mut plans = Vec::new();
    for shape in shapes {
        for (is_control, cond) in [(true, plain), (false, ours.as_str())] {
            let sql = format!("EXPLAIN {}", shape.replace("{cond}", cond));
            let rows = held.query(&sql, &[&ids, &token]).await.expect("explain");
            let plan: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            plans.push((shape, is_control, plan));
        }
    }
    held.batch_execute("ROLLBACK").await.expect("roll back");
    for (shape, is_control, plan) in plans {
        let used = running_indexes_in(&plan);
        if is_control {
            // The control: the setup does make a plain state test use such an index.
            assert!(
                !used.is_empty(),
                "{shape}: the plain test used none:\n{plan:#?}"
            );
        } else {
            assert!(
                used.is_empty(),
                "{shape}: {used:?} serve the lease check:\n{plan:#?}"
            );
        }
    }
}
