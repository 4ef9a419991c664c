//! The conformance suite every [`Store`](crate::Store) must pass, case for case.
//!
//! A backend's test file calls [`conformance_suite!`](crate::conformance_suite) with an async
//! function that returns a fresh, empty [`Fixture`]; each case becomes one `#[tokio::test]`.
//! Cases are plain async functions so a failing one reads like a specification.

#![expect(
    clippy::expect_used,
    reason = "the conformance suite is test code: a failed expectation is a failed case"
)]

use std::any::Any;
use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::{
    AttemptOutcome, JobId, JobKind, JobState, LeaseToken, NewJob, Progress, QueueName, RetryPolicy,
};
use serde_json::json;

use crate::{
    ClaimedJob, DeadSelection, InsertedJob, JobClaimParams, JobHeartbeatParams,
    JobInsertManyParams, JobListParams, JobPruneParams, JobRescueParams, JobSettleManyParams,
    NodeHeartbeatParams, Settlement, SharedStore, StoreError,
};

/// A fresh store for one case, and whatever keeps it alive (a temp dir, a schema).
pub struct Fixture {
    /// The store under test, empty.
    pub store: SharedStore,
    /// Dropped when the case ends: cleans up.
    pub guard: Box<dyn Any + Send>,
}

/// Generates one test per conformance case, each on a fresh fixture from `$factory`, an
/// async function returning `Option<Fixture>`; `None` skips the case (the factory says why,
/// loudly: e.g. no PostgreSQL reachable and none required).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@cases $factory;
            insert_then_get_round_trips,
            insert_many_is_all_or_nothing,
            idempotency_key_returns_the_first_job,
            idempotency_key_is_released_after_its_window,
            get_unknown_job_is_not_found,
            claim_takes_highest_priority_then_oldest,
            claim_counts_the_attempt_and_leases,
            claim_skips_paused_queue,
            claim_filters_by_kind,
            claim_waits_for_run_at,
            complete_with_stale_token_is_rejected,
            complete_after_lease_expiry_is_rejected,
            fail_retries_with_backoff_then_goes_dead,
            fail_with_dead_flag_is_final,
            fail_with_zero_retry_is_claimable_again,
            heartbeat_extends_lease_and_saves_progress,
            expired_lease_returns_job_to_queue,
            expired_lease_without_attempts_left_is_dead,
            attempt_past_timeout_is_failed,
            cancel_running_job_fences_its_worker,
            cancel_finished_job_conflicts,
            retry_dead_job_grants_one_more_attempt,
            retry_running_job_conflicts,
            settle_many_fences_each_entry,
            attempts_are_recorded,
            list_filters_and_paginates,
            queue_list_counts_states,
            pause_unknown_queue_is_not_found,
            dead_requeue_and_purge_by_selection,
            schedule_due_makes_jobs_available,
            nodes_register_heartbeat_and_stop,
            prune_deletes_only_finished_jobs_past_retention,
            restore_keeps_exported_jobs_and_is_repeatable,
            schedules_are_created_replaced_paused_and_deleted,
            schedule_fire_is_exactly_once_per_slot,
            schedule_due_lists_unpaused_schedules_with_work,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $factory().await else {
                    return;
                };
                $crate::conformance::$case(fixture.store.clone()).await;
                drop(fixture);
            }
        )*
    };
}

fn queue(name: &str) -> QueueName {
    QueueName::parse(name).expect("test queue name")
}

fn new_job(q: &str, kind: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        kind: JobKind::parse(kind).expect("test kind"),
        queue: queue(q),
        payload: json!({"n": 1}),
        priority: 0,
        run_at: RunAt::Now,
        max_attempts: 3,
        timeout: None,
        tags: vec![],
        idempotency_key: None,
        slot: None,
    }
}

const WINDOW: Duration = Duration::from_secs(3600);

async fn insert(store: &SharedStore, jobs: Vec<NewJob>) -> Vec<InsertedJob> {
    store
        .job_insert_many(JobInsertManyParams {
            jobs,
            idempotency_window: WINDOW,
        })
        .await
        .expect("insert")
}

async fn claim_with(store: &SharedStore, q: &str, max: u32, lease: Duration) -> Vec<ClaimedJob> {
    store
        .job_claim(JobClaimParams {
            queue: queue(q),
            worker: "w1".into(),
            max,
            lease,
            kinds: vec![],
        })
        .await
        .expect("claim")
}

async fn claim(store: &SharedStore, q: &str, max: u32) -> Vec<ClaimedJob> {
    claim_with(store, q, max, Duration::from_secs(30)).await
}

fn no_jitter() -> RetryPolicy {
    RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::default()
    }
}

async fn settle(store: &SharedStore, s: Settlement) -> Result<errand_core::Job, StoreError> {
    let mut out = store
        .job_settle_many(JobSettleManyParams {
            settlements: vec![s],
            retry_policy: no_jitter(),
        })
        .await
        .expect("settle call");
    out.pop().expect("one result")
}

fn complete(c: &ClaimedJob) -> Settlement {
    Settlement::Complete {
        id: c.job.id,
        lease_token: c.lease_token,
        result: Some(json!({"ok": true})),
    }
}

fn fail(c: &ClaimedJob, retry_in: Option<Duration>, dead: bool) -> Settlement {
    Settlement::Fail {
        id: c.job.id,
        lease_token: c.lease_token,
        error: "boom".into(),
        retry_in,
        dead,
    }
}

async fn rescue(store: &SharedStore) -> Vec<errand_core::Job> {
    store
        .job_rescue_expired(JobRescueParams {
            limit: 1000,
            retry_policy: no_jitter(),
        })
        .await
        .expect("rescue")
}

/// Waits until the wall clock passes `t` (a lease end); the condition is time itself.
async fn wait_past(t: jiff::Timestamp) {
    loop {
        let now = jiff::Timestamp::now();
        if now > t {
            return;
        }
        let left = t.duration_since(now).unsigned_abs();
        tokio::time::sleep(left + Duration::from_millis(5)).await;
    }
}

/// Rescues until `id` comes back, with a deadline.
async fn rescue_until(store: &SharedStore, id: JobId) -> errand_core::Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(job) = rescue(store).await.into_iter().find(|j| j.id == id) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} was never rescued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A job inserted and read back keeps every field.
pub async fn insert_then_get_round_trips(store: SharedStore) {
    let mut job = new_job("default", "mail.send");
    job.priority = 7;
    job.tags = vec!["a".into(), "b".into()];
    job.timeout = Some(Duration::from_secs(9));
    job.payload = json!({"to": "x@example.com", "nested": [1, 2, {"k": null}], "uni": "é✓"});
    let out = insert(&store, vec![job.clone()]).await;
    assert!(out[0].inserted);
    let got = store.job_get(job.id).await.expect("get");
    assert_eq!(
        got, out[0].job,
        "the insert's answer is what a read returns"
    );
    assert_eq!(got.state, JobState::Available);
    assert_eq!(got.payload, job.payload);
    assert_eq!(got.priority, 7);
    assert_eq!(got.tags, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(got.timeout_ms, Some(9000));
    assert_eq!(got.attempt, 0);
    assert_eq!(got.max_attempts, 3);
}

/// A batch that cannot be stored whole stores nothing.
pub async fn insert_many_is_all_or_nothing(store: SharedStore) {
    let a = new_job("default", "k");
    let mut b = new_job("default", "k");
    b.id = a.id;
    let err = store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![a.clone(), b],
            idempotency_window: WINDOW,
        })
        .await;
    assert!(err.is_err(), "a duplicate id must fail the batch");
    assert!(matches!(
        store.job_get(a.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A repeated idempotency key, in one batch or later, answers with the first job.
pub async fn idempotency_key_returns_the_first_job(store: SharedStore) {
    let mut a = new_job("default", "k");
    a.idempotency_key = Some("order-1".into());
    let mut b = new_job("default", "k");
    b.idempotency_key = Some("order-1".into());
    let out = insert(&store, vec![a.clone(), b.clone()]).await;
    assert!(out[0].inserted);
    assert!(!out[1].inserted);
    assert_eq!(out[1].job.id, a.id);
    let mut c = new_job("default", "k");
    c.idempotency_key = Some("order-1".into());
    let again = insert(&store, vec![c.clone()]).await;
    assert!(!again[0].inserted);
    assert_eq!(again[0].job.id, a.id);
    assert!(matches!(
        store.job_get(c.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Once the window has passed, the same key enqueues a new job.
pub async fn idempotency_key_is_released_after_its_window(store: SharedStore) {
    let mut a = new_job("default", "k");
    a.idempotency_key = Some("once".into());
    let out = store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![a.clone()],
            idempotency_window: Duration::ZERO,
        })
        .await
        .expect("insert");
    assert!(out[0].inserted);
    let mut b = new_job("default", "k");
    b.idempotency_key = Some("once".into());
    let out = insert(&store, vec![b.clone()]).await;
    assert!(out[0].inserted, "an expired key must not deduplicate");
    assert_eq!(out[0].job.id, b.id);
    assert!(store.job_get(a.id).await.is_ok(), "the first job stays");
}

/// Unknown ids are `NotFound` everywhere.
pub async fn get_unknown_job_is_not_found(store: SharedStore) {
    let id = JobId::new();
    assert!(matches!(
        store.job_get(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.job_cancel(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.job_retry(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.job_attempt_list(id).await,
        Err(StoreError::NotFound { .. })
    ));
    let hb = store
        .job_heartbeat(JobHeartbeatParams {
            id,
            lease_token: LeaseToken::new(),
            lease: None,
            progress: None,
            checkpoint: None,
        })
        .await;
    assert!(matches!(hb, Err(StoreError::NotFound { .. })));
}

/// Higher priority runs first; within a priority, the oldest first.
pub async fn claim_takes_highest_priority_then_oldest(store: SharedStore) {
    let low = new_job("q", "k");
    let mut high = new_job("q", "k");
    high.priority = 10;
    let low2 = new_job("q", "k");
    insert(&store, vec![low.clone()]).await;
    insert(&store, vec![high.clone()]).await;
    insert(&store, vec![low2.clone()]).await;
    let got: Vec<JobId> = claim(&store, "q", 10)
        .await
        .iter()
        .map(|c| c.job.id)
        .collect();
    assert_eq!(got, vec![high.id, low.id, low2.id]);
}

/// A claim counts an attempt, marks the job running and issues a lease.
pub async fn claim_counts_the_attempt_and_leases(store: SharedStore) {
    let j = new_job("q", "k");
    insert(
        &store,
        vec![j.clone(), new_job("q", "k"), new_job("q", "k")],
    )
    .await;
    let claimed = claim(&store, "q", 2).await;
    assert_eq!(claimed.len(), 2, "max bounds the claim");
    let c = &claimed[0];
    assert_eq!(c.job.state, JobState::Running);
    assert_eq!(c.job.attempt, 1);
    assert_eq!(c.job.worker.as_deref(), Some("w1"));
    assert!(c.job.lease_expires_at.is_some());
    assert_eq!(
        claim(&store, "q", 10).await.len(),
        1,
        "claimed jobs are not handed out twice"
    );
    assert!(claim(&store, "q", 10).await.is_empty());
    assert!(claim(&store, "nothing-here", 10).await.is_empty());
}

/// A paused queue hands out nothing until resumed.
pub async fn claim_skips_paused_queue(store: SharedStore) {
    insert(&store, vec![new_job("p", "k")]).await;
    let info = store
        .queue_set_paused(&queue("p"), true)
        .await
        .expect("pause");
    assert!(info.paused);
    assert!(claim(&store, "p", 10).await.is_empty());
    store
        .queue_set_paused(&queue("p"), false)
        .await
        .expect("resume");
    assert_eq!(claim(&store, "p", 10).await.len(), 1);
}

/// A claim with kinds takes only those kinds.
pub async fn claim_filters_by_kind(store: SharedStore) {
    let a = new_job("q", "a");
    let b = new_job("q", "b");
    insert(&store, vec![a.clone(), b.clone()]).await;
    let got = store
        .job_claim(JobClaimParams {
            queue: queue("q"),
            worker: "w".into(),
            max: 10,
            lease: Duration::from_secs(30),
            kinds: vec![JobKind::parse("b").expect("kind")],
        })
        .await
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, b.id);
}

/// A delayed job is scheduled and not claimable before its time.
pub async fn claim_waits_for_run_at(store: SharedStore) {
    let mut later = new_job("q", "k");
    later.run_at = RunAt::After(Duration::from_secs(3600));
    let out = insert(&store, vec![later.clone()]).await;
    assert_eq!(out[0].job.state, JobState::Scheduled);
    assert!(claim(&store, "q", 10).await.is_empty());
    let mut past = new_job("q", "k");
    past.run_at = RunAt::At(0);
    insert(&store, vec![past.clone()]).await;
    let got = claim(&store, "q", 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, past.id);
}

/// Fencing: a token that is not the current lease's changes nothing.
pub async fn complete_with_stale_token_is_rejected(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let forged = ClaimedJob {
        job: c.job.clone(),
        lease_token: LeaseToken::new(),
    };
    assert!(matches!(
        settle(&store, complete(&forged)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        settle(&store, fail(&forged, None, false)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(
        store.job_get(c.job.id).await.expect("get").state,
        JobState::Running
    );
    let done = settle(&store, complete(&c))
        .await
        .expect("the real token completes");
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(matches!(
        settle(&store, complete(&c)).await,
        Err(StoreError::LeaseLost { .. })
    ));
}

/// A worker whose lease expired cannot complete, even before any rescue ran, nor after the
/// job was claimed again.
pub async fn complete_after_lease_expiry_is_rejected(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim_with(&store, "q", 1, Duration::from_millis(150))
        .await
        .remove(0);
    wait_past(c.job.lease_expires_at.expect("lease")).await;
    assert!(matches!(
        settle(&store, complete(&c)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    rescue_until(&store, c.job.id).await;
    let again = claim(&store, "q", 1).await.remove(0);
    assert_eq!(again.job.attempt, 2);
    assert!(matches!(
        settle(&store, complete(&c)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    settle(&store, complete(&again))
        .await
        .expect("the new lease completes");
}

/// Failures wait for a growing backoff; the last allowed attempt's failure is dead.
pub async fn fail_retries_with_backoff_then_goes_dead(store: SharedStore) {
    let mut j = new_job("q", "k");
    j.max_attempts = 2;
    insert(&store, vec![j.clone()]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let failed = settle(&store, fail(&c, None, false)).await.expect("fail");
    assert_eq!(failed.state, JobState::Scheduled);
    assert_eq!(failed.error.as_deref(), Some("boom"));
    let wait = failed
        .run_at
        .duration_since(failed.updated_at)
        .unsigned_abs();
    assert!(
        wait >= Duration::from_millis(900),
        "backoff after the first failure: {wait:?}"
    );
    assert!(
        claim(&store, "q", 1).await.is_empty(),
        "not before its backoff"
    );
    store.job_retry(j.id).await.expect("run the retry now");
    let c2 = claim(&store, "q", 1).await.remove(0);
    assert_eq!(c2.job.attempt, 2);
    let dead = settle(&store, fail(&c2, None, false)).await.expect("fail");
    assert_eq!(dead.state, JobState::Dead);
    assert!(dead.finished_at.is_some());
}

/// `dead: true` ends the job whatever attempts are left.
pub async fn fail_with_dead_flag_is_final(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let dead = settle(&store, fail(&c, None, true)).await.expect("fail");
    assert_eq!(dead.state, JobState::Dead);
}

/// `retry_in: 0` makes the job available at once.
pub async fn fail_with_zero_retry_is_claimable_again(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let back = settle(&store, fail(&c, Some(Duration::ZERO), false))
        .await
        .expect("fail");
    assert_eq!(back.state, JobState::Available);
    let c2 = claim(&store, "q", 1).await.remove(0);
    assert_eq!(c2.job.attempt, 2);
    assert_ne!(
        c2.lease_token, c.lease_token,
        "each claim issues a new fencing token"
    );
}

/// A heartbeat extends the lease and durably records progress and checkpoint.
pub async fn heartbeat_extends_lease_and_saves_progress(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim_with(&store, "q", 1, Duration::from_secs(1))
        .await
        .remove(0);
    let before = c.job.lease_expires_at.expect("lease");
    let job = store
        .job_heartbeat(JobHeartbeatParams {
            id: c.job.id,
            lease_token: c.lease_token,
            lease: Some(Duration::from_secs(60)),
            progress: Some(Progress {
                percent: Some(40.0),
                message: Some("copying".into()),
            }),
            checkpoint: Some(json!({"offset": 400})),
        })
        .await
        .expect("heartbeat");
    assert!(job.lease_expires_at.expect("lease") > before);
    let got = store.job_get(c.job.id).await.expect("get");
    assert_eq!(got.progress.and_then(|p| p.percent), Some(40.0));
    assert_eq!(got.checkpoint, Some(json!({"offset": 400})));
    let stale = store
        .job_heartbeat(JobHeartbeatParams {
            id: c.job.id,
            lease_token: LeaseToken::new(),
            lease: None,
            progress: None,
            checkpoint: Some(json!("overwrite")),
        })
        .await;
    assert!(matches!(stale, Err(StoreError::LeaseLost { .. })));
    let got = store.job_get(c.job.id).await.expect("get");
    assert_eq!(
        got.checkpoint,
        Some(json!({"offset": 400})),
        "a stale heartbeat changes nothing"
    );
}

/// An expired lease puts the job back, and the attempt shows as lease_expired.
pub async fn expired_lease_returns_job_to_queue(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim_with(&store, "q", 1, Duration::from_millis(100))
        .await
        .remove(0);
    let back = rescue_until(&store, c.job.id).await;
    assert_eq!(back.state, JobState::Available);
    assert_eq!(back.attempt, 1, "the attempt counts");
    let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(attempts[0].outcome, AttemptOutcome::LeaseExpired);
    assert_eq!(claim(&store, "q", 1).await.len(), 1);
}

/// An expired lease on the last attempt makes the job dead.
pub async fn expired_lease_without_attempts_left_is_dead(store: SharedStore) {
    let mut j = new_job("q", "k");
    j.max_attempts = 1;
    insert(&store, vec![j]).await;
    let c = claim_with(&store, "q", 1, Duration::from_millis(100))
        .await
        .remove(0);
    let back = rescue_until(&store, c.job.id).await;
    assert_eq!(back.state, JobState::Dead);
}

/// An attempt that outlives its timeout fails even while heartbeating.
pub async fn attempt_past_timeout_is_failed(store: SharedStore) {
    let mut j = new_job("q", "k");
    j.timeout = Some(Duration::from_millis(100));
    insert(&store, vec![j]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let back = rescue_until(&store, c.job.id).await;
    assert_eq!(
        back.state,
        JobState::Scheduled,
        "a timeout is a failure: it backs off"
    );
    let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(attempts[0].outcome, AttemptOutcome::TimedOut);
}

/// Cancelling a running job takes the lease away from its worker.
pub async fn cancel_running_job_fences_its_worker(store: SharedStore) {
    insert(&store, vec![new_job("q", "k"), new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let cancelled = store.job_cancel(c.job.id).await.expect("cancel");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(matches!(
        settle(&store, complete(&c)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let waiting = claim(&store, "q", 1).await.remove(0);
    assert_ne!(waiting.job.id, c.job.id);
}

/// A finished job cannot be cancelled.
pub async fn cancel_finished_job_conflicts(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    settle(&store, complete(&c)).await.expect("complete");
    assert!(matches!(
        store.job_cancel(c.job.id).await,
        Err(StoreError::Conflict(_))
    ));
}

/// A dead job retried runs once more.
pub async fn retry_dead_job_grants_one_more_attempt(store: SharedStore) {
    let mut j = new_job("q", "k");
    j.max_attempts = 1;
    insert(&store, vec![j.clone()]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    settle(&store, fail(&c, None, false)).await.expect("fail");
    let again = store.job_retry(j.id).await.expect("retry");
    assert_eq!(again.state, JobState::Available);
    assert_eq!(again.max_attempts, 2);
    let c2 = claim(&store, "q", 1).await.remove(0);
    assert_eq!(c2.job.attempt, 2);
}

/// Running, available and succeeded jobs are not retried.
pub async fn retry_running_job_conflicts(store: SharedStore) {
    let j = new_job("q", "k");
    insert(&store, vec![j.clone()]).await;
    assert!(matches!(
        store.job_retry(j.id).await,
        Err(StoreError::Conflict(_))
    ));
    claim(&store, "q", 1).await;
    assert!(matches!(
        store.job_retry(j.id).await,
        Err(StoreError::Conflict(_))
    ));
}

/// One settle call: each entry fenced alone, answers in input order.
pub async fn settle_many_fences_each_entry(store: SharedStore) {
    insert(
        &store,
        vec![new_job("q", "k"), new_job("q", "k"), new_job("q", "k")],
    )
    .await;
    let cs = claim(&store, "q", 3).await;
    let forged = ClaimedJob {
        job: cs[1].job.clone(),
        lease_token: LeaseToken::new(),
    };
    let out = store
        .job_settle_many(JobSettleManyParams {
            settlements: vec![
                complete(&cs[0]),
                complete(&forged),
                fail(&cs[2], None, true),
            ],
            retry_policy: no_jitter(),
        })
        .await
        .expect("settle");
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].as_ref().expect("first").state, JobState::Succeeded);
    assert!(matches!(out[1], Err(StoreError::LeaseLost { .. })));
    assert_eq!(out[2].as_ref().expect("third").state, JobState::Dead);
    assert_eq!(
        store.job_get(cs[1].job.id).await.expect("get").state,
        JobState::Running
    );
}

/// Each attempt is kept with its worker and outcome.
pub async fn attempts_are_recorded(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    settle(&store, fail(&c, Some(Duration::ZERO), false))
        .await
        .expect("fail");
    let c2 = claim(&store, "q", 1).await.remove(0);
    settle(&store, complete(&c2)).await.expect("complete");
    let a = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].attempt, a[0].outcome), (1, AttemptOutcome::Failed));
    assert_eq!(a[0].error.as_deref(), Some("boom"));
    assert_eq!((a[1].attempt, a[1].outcome), (2, AttemptOutcome::Succeeded));
    assert_eq!(a[1].worker.as_deref(), Some("w1"));
    assert!(a[1].finished_at.is_some());
}

/// Listing filters by queue, state, kind and tag, newest first, with a cursor.
pub async fn list_filters_and_paginates(store: SharedStore) {
    let mut jobs = Vec::new();
    for i in 0..5 {
        let mut j = new_job(
            if i % 2 == 0 { "even" } else { "odd" },
            if i < 3 { "early" } else { "late" },
        );
        if i == 4 {
            j.tags = vec!["vip".into()];
        }
        jobs.push(j);
    }
    for j in &jobs {
        insert(&store, vec![j.clone()]).await;
    }
    let all = store
        .job_list(JobListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    let ids: Vec<JobId> = all.iter().map(|j| j.id).collect();
    let mut expected: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    expected.reverse();
    assert_eq!(ids, expected, "newest first");
    let page1 = store
        .job_list(JobListParams {
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("list");
    let page2 = store
        .job_list(JobListParams {
            limit: 2,
            before: Some(page1[1].id),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page2.iter().map(|j| j.id).collect::<Vec<_>>(),
        expected[2..4].to_vec()
    );
    let even = store
        .job_list(JobListParams {
            queue: Some(queue("even")),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(even.len(), 3);
    let late = store
        .job_list(JobListParams {
            kind: Some(JobKind::parse("late").expect("kind")),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(late.len(), 2);
    let vip = store
        .job_list(JobListParams {
            tag: Some("vip".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        vip.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![jobs[4].id]
    );
    claim(&store, "odd", 1).await;
    let running = store
        .job_list(JobListParams {
            state: Some(JobState::Running),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(running.len(), 1);
}

/// Queue listings count jobs per state.
pub async fn queue_list_counts_states(store: SharedStore) {
    insert(
        &store,
        vec![new_job("a", "k"), new_job("a", "k"), new_job("b", "k")],
    )
    .await;
    let mut later = new_job("a", "k");
    later.run_at = RunAt::After(Duration::from_secs(3600));
    insert(&store, vec![later]).await;
    claim(&store, "a", 1).await;
    let queues = store.queue_list().await.expect("queues");
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b"]);
    let a = &queues[0];
    assert_eq!(
        (a.counts.available, a.counts.running, a.counts.scheduled),
        (1, 1, 1)
    );
    assert!(a.oldest_available_age_ms.is_some());
    assert!(!a.paused);
    let b = store.queue_get(&queue("b")).await.expect("queue");
    assert_eq!(b.counts.available, 1);
    assert!(matches!(
        store.queue_get(&queue("zzz")).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Pausing a queue nobody used is `NotFound`.
pub async fn pause_unknown_queue_is_not_found(store: SharedStore) {
    let r = store.queue_set_paused(&queue("ghost"), true).await;
    assert!(matches!(r, Err(StoreError::NotFound { .. })));
}

/// Dead jobs are requeued and purged by queue or by id.
pub async fn dead_requeue_and_purge_by_selection(store: SharedStore) {
    let mut ids = Vec::new();
    for q in ["a", "a", "b"] {
        let j = new_job(q, "k");
        ids.push(j.id);
        insert(&store, vec![j]).await;
        let c = claim(&store, q, 1).await.remove(0);
        settle(&store, fail(&c, None, true)).await.expect("fail");
    }
    let n = store
        .dead_requeue_many(DeadSelection {
            queue: None,
            ids: vec![ids[0]],
        })
        .await
        .expect("requeue");
    assert_eq!(n, 1);
    assert_eq!(
        store.job_get(ids[0]).await.expect("get").state,
        JobState::Available
    );
    let n = store
        .dead_purge_many(DeadSelection {
            queue: Some(queue("a")),
            ids: vec![],
        })
        .await
        .expect("purge");
    assert_eq!(n, 1);
    assert!(matches!(
        store.job_get(ids[1]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.job_get(ids[2]).await.expect("get").state,
        JobState::Dead
    );
    let n = store
        .dead_requeue_many(DeadSelection::default())
        .await
        .expect("requeue");
    assert_eq!(n, 1);
    assert_eq!(
        store.job_get(ids[2]).await.expect("get").state,
        JobState::Available
    );
}

/// Due scheduled jobs become available and name their queue.
pub async fn schedule_due_makes_jobs_available(store: SharedStore) {
    insert(&store, vec![new_job("x", "k")]).await;
    let c = claim(&store, "x", 1).await.remove(0);
    settle(&store, fail(&c, Some(Duration::from_millis(1)), false))
        .await
        .expect("fail");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let queues = store.job_schedule_due(100).await.expect("due");
        if queues == vec![queue("x")] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retry never came due"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        store.job_get(c.job.id).await.expect("get").state,
        JobState::Available
    );
    assert!(store.job_schedule_due(100).await.expect("due").is_empty());
}

/// Nodes register with their first heartbeat, list newest first, and show how they ended.
pub async fn nodes_register_heartbeat_and_stop(store: SharedStore) {
    let a = errand_core::NodeId::new();
    let b = errand_core::NodeId::new();
    for id in [a, b] {
        store
            .node_heartbeat(NodeHeartbeatParams {
                id,
                host: "host-1".into(),
                pid: 42,
                version: "0.1.0".into(),
            })
            .await
            .expect("heartbeat");
    }
    store.node_stop(a).await.expect("stop");
    let day = Duration::from_secs(86_400);
    let nodes = store
        .node_list(Duration::from_secs(30), day)
        .await
        .expect("list");
    assert_eq!(nodes.len(), 2);
    let status = |id| nodes.iter().find(|n| n.id == id).map(|n| n.status);
    assert_eq!(status(a), Some(errand_core::NodeStatus::Stopped));
    assert_eq!(status(b), Some(errand_core::NodeStatus::Alive));
    assert_eq!(nodes[0].host, "host-1");
    assert_eq!(nodes[0].pid, 42);
    let judged_dead = store.node_list(Duration::ZERO, day).await.expect("list");
    let b_now = judged_dead.iter().find(|n| n.id == b).expect("b listed");
    assert_eq!(
        b_now.status,
        errand_core::NodeStatus::Dead,
        "no heartbeat within dead_after"
    );
}

/// Pruning deletes finished jobs of the named states past the retention, with their
/// attempts, and nothing else.
pub async fn prune_deletes_only_finished_jobs_past_retention(store: SharedStore) {
    insert(
        &store,
        vec![new_job("q", "k"), new_job("q", "k"), new_job("q", "k")],
    )
    .await;
    let cs = claim(&store, "q", 2).await;
    let done = settle(&store, complete(&cs[0])).await.expect("complete");
    let dead = settle(&store, fail(&cs[1], None, true))
        .await
        .expect("fail");
    wait_past(
        done.finished_at
            .expect("finished")
            .max(dead.finished_at.expect("finished")),
    )
    .await;
    let prune = |states: Vec<JobState>, older_than| JobPruneParams {
        states,
        older_than,
        limit: 100,
    };
    let n = store
        .job_prune(prune(vec![JobState::Dead], Duration::from_secs(3600)))
        .await
        .expect("prune");
    assert_eq!(n, 0, "not yet past the retention");
    let n = store
        .job_prune(prune(
            vec![JobState::Succeeded, JobState::Cancelled],
            Duration::ZERO,
        ))
        .await
        .expect("prune");
    assert_eq!(n, 1);
    assert!(matches!(
        store.job_get(done.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.job_attempt_list(done.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.job_get(dead.id).await.expect("dead stays").state,
        JobState::Dead
    );
    let queues = store.queue_list().await.expect("queues");
    assert_eq!(
        queues[0].counts.available, 1,
        "unfinished jobs are never pruned"
    );
}

fn exported(state: JobState, attempt_outcomes: &[AttemptOutcome]) -> crate::RestoredJob {
    let t = |ms: i64| jiff::Timestamp::from_millisecond(1_790_000_000_000 + ms).expect("timestamp");
    let attempts: Vec<errand_core::Attempt> = attempt_outcomes
        .iter()
        .enumerate()
        .map(|(i, outcome)| errand_core::Attempt {
            attempt: i as u32 + 1,
            worker: Some("old-worker".into()),
            started_at: t(10 + i as i64),
            finished_at: (*outcome != AttemptOutcome::Running).then(|| t(20 + i as i64)),
            outcome: *outcome,
            error: (*outcome == AttemptOutcome::Failed).then(|| "boom".to_string()),
        })
        .collect();
    crate::RestoredJob {
        job: errand_core::Job {
            id: JobId::new(),
            kind: JobKind::parse("imported").expect("kind"),
            queue: queue("moved"),
            state,
            payload: json!({"from": "sqlite"}),
            priority: 3,
            run_at: t(0),
            attempt: attempts.len() as u32,
            max_attempts: 5,
            timeout_ms: Some(60_000),
            tags: vec!["migrated".into()],
            idempotency_key: None,
            schedule: None,
            slot: None,
            result: (state == JobState::Succeeded).then(|| json!({"ok": 1})),
            error: (state == JobState::Dead).then(|| "boom".to_string()),
            progress: Some(Progress {
                percent: Some(100.0),
                message: None,
            }),
            checkpoint: Some(json!({"page": 7})),
            worker: (!attempts.is_empty()).then(|| "old-worker".to_string()),
            lease_expires_at: None,
            created_at: t(0),
            updated_at: t(30),
            started_at: (!attempts.is_empty()).then(|| t(10)),
            finished_at: state.is_final().then(|| t(25)),
        },
        attempts,
    }
}

/// Exported jobs arrive with their ids, states, history and timestamps; a running one
/// arrives ready to run again; importing twice inserts nothing the second time.
pub async fn restore_keeps_exported_jobs_and_is_repeatable(store: SharedStore) {
    let done = exported(
        JobState::Succeeded,
        &[AttemptOutcome::Failed, AttemptOutcome::Succeeded],
    );
    let running = exported(JobState::Running, &[AttemptOutcome::Running]);
    let mut dead = exported(JobState::Dead, &[AttemptOutcome::Failed]);
    dead.job.idempotency_key = Some("import-key".into());
    let all = vec![done.clone(), running.clone(), dead.clone()];
    assert_eq!(
        store.job_restore_many(all.clone()).await.expect("restore"),
        3
    );
    assert_eq!(store.job_restore_many(all).await.expect("restore again"), 0);
    let got = store.job_get(done.job.id).await.expect("get");
    assert_eq!(got, done.job, "a finished job arrives exactly as it left");
    assert_eq!(
        store.job_attempt_list(done.job.id).await.expect("attempts"),
        done.attempts
    );
    let got = store.job_get(running.job.id).await.expect("get");
    assert_eq!(got.state, JobState::Available);
    let attempts = store
        .job_attempt_list(running.job.id)
        .await
        .expect("attempts");
    assert_eq!(attempts[0].outcome, AttemptOutcome::LeaseExpired);
    assert_eq!(
        store
            .job_get(dead.job.id)
            .await
            .expect("get")
            .idempotency_key
            .as_deref(),
        Some("import-key")
    );
    let c = claim(&store, "moved", 10).await;
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].job.id, c[0].job.attempt), (running.job.id, 2));
    store
        .queue_upsert(&queue("moved"), true)
        .await
        .expect("upsert");
    store
        .queue_upsert(&queue("fresh"), true)
        .await
        .expect("upsert");
    assert!(
        store
            .queue_get(&queue("moved"))
            .await
            .expect("queue")
            .paused
    );
    assert!(
        store
            .queue_get(&queue("fresh"))
            .await
            .expect("queue")
            .paused
    );
}

fn spec(name: &str) -> errand_core::schedule_spec::ScheduleSpec {
    use errand_core::schedule_spec::{CatchUpPolicy, JobTemplate, OverlapPolicy, ScheduleSpec};
    ScheduleSpec {
        name: queue(name),
        cron: None,
        every_ms: Some(1000),
        timezone: "UTC".into(),
        job: JobTemplate {
            kind: JobKind::parse("tick").expect("kind"),
            queue: queue("ticks"),
            payload: json!({"n": 1}),
            priority: 0,
            max_attempts: 3,
            timeout_ms: None,
            tags: vec![],
        },
        overlap: OverlapPolicy::Allow,
        catch_up: CatchUpPolicy::Once,
        catch_up_window_ms: 3_600_000,
        jitter_ms: 0,
    }
}

fn slot_job(schedule: &str, at: i64) -> NewJob {
    NewJob {
        slot: Some(errand_core::job::ScheduleSlot {
            schedule: schedule.into(),
            at,
        }),
        ..new_job("ticks", "tick")
    }
}

fn fire_params(
    name: &str,
    expected: Option<i64>,
    jobs: Vec<NewJob>,
    next: Option<i64>,
) -> crate::ScheduleFireParams {
    crate::ScheduleFireParams {
        name: queue(name),
        expected_next_fire_at: expected,
        jobs,
        next_fire_at: next,
        buffered_slot: None,
        idempotency_window: WINDOW,
    }
}

/// Schedules are created once, replaced, paused, listed and deleted.
pub async fn schedules_are_created_replaced_paused_and_deleted(store: SharedStore) {
    let created = store
        .schedule_put(spec("nightly"), Some(5_000), true)
        .await
        .expect("create");
    assert_eq!(created.spec, spec("nightly"));
    assert_eq!(
        created.next_fire_at.map(|t| t.as_millisecond()),
        Some(5_000)
    );
    assert!(!created.paused);
    let again = store.schedule_put(spec("nightly"), Some(5_000), true).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "create twice: {again:?}"
    );
    let mut changed = spec("nightly");
    changed.every_ms = Some(60_000);
    let replaced = store
        .schedule_put(changed.clone(), Some(60_000), false)
        .await
        .expect("replace");
    assert_eq!(replaced.spec, changed);
    assert_eq!(
        replaced.created_at, created.created_at,
        "replacing keeps the history"
    );
    store
        .schedule_put(spec("hourly"), None, true)
        .await
        .expect("create");
    let names: Vec<String> = store
        .schedule_list()
        .await
        .expect("list")
        .iter()
        .map(|s| s.spec.name.to_string())
        .collect();
    assert_eq!(names, vec!["hourly".to_string(), "nightly".to_string()]);
    assert!(
        store
            .schedule_set_paused(&queue("nightly"), true)
            .await
            .expect("pause")
            .paused
    );
    store
        .schedule_delete(&queue("nightly"))
        .await
        .expect("delete");
    assert!(matches!(
        store.schedule_get(&queue("nightly")).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.schedule_delete(&queue("nightly")).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A slot gets one job however often it is fired, and a scheduler that read a stale
/// `next_fire_at` changes nothing.
pub async fn schedule_fire_is_exactly_once_per_slot(store: SharedStore) {
    store
        .schedule_put(spec("tick"), Some(1_000), true)
        .await
        .expect("create");
    let fired = store
        .schedule_fire(fire_params(
            "tick",
            Some(1_000),
            vec![slot_job("tick", 1_000)],
            Some(2_000),
        ))
        .await
        .expect("fire");
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].schedule.as_deref(), Some("tick"));
    assert_eq!(fired[0].slot.map(|t| t.as_millisecond()), Some(1_000));
    let stale = store
        .schedule_fire(fire_params(
            "tick",
            Some(1_000),
            vec![slot_job("tick", 1_000)],
            Some(2_000),
        ))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let repeat = store
        .schedule_fire(fire_params(
            "tick",
            Some(2_000),
            vec![slot_job("tick", 1_000), slot_job("tick", 2_000)],
            Some(3_000),
        ))
        .await
        .expect("fire");
    assert_eq!(repeat.len(), 1, "slot 1000 already had its job");
    assert_eq!(repeat[0].slot.map(|t| t.as_millisecond()), Some(2_000));
    let got = store.job_get(fired[0].id).await.expect("get");
    assert_eq!(got.schedule.as_deref(), Some("tick"));
    let s = store.schedule_get(&queue("tick")).await.expect("schedule");
    assert_eq!(s.next_fire_at.map(|t| t.as_millisecond()), Some(3_000));
    assert_eq!(s.last_fire_at.map(|t| t.as_millisecond()), Some(2_000));
    assert_eq!(s.last_job_id, Some(repeat[0].id));
    assert_eq!(s.last_job_state, Some(JobState::Available));
    let jobs = store
        .job_list(JobListParams {
            queue: Some(queue("ticks")),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(jobs.len(), 2);
}

/// Due means: not paused, and a slot whose time has come (on the store's clock).
pub async fn schedule_due_lists_unpaused_schedules_with_work(store: SharedStore) {
    store
        .schedule_put(spec("past"), Some(0), true)
        .await
        .expect("create");
    store
        .schedule_put(spec("paused"), Some(0), true)
        .await
        .expect("create");
    store
        .schedule_set_paused(&queue("paused"), true)
        .await
        .expect("pause");
    store
        .schedule_put(spec("future"), Some(i64::MAX / 2), true)
        .await
        .expect("create");
    store
        .schedule_put(spec("never"), None, true)
        .await
        .expect("create");
    let (now, due) = store.schedule_due(100).await.expect("due");
    let names: Vec<String> = due.iter().map(|s| s.spec.name.to_string()).collect();
    assert_eq!(names, vec!["past".to_string()]);
    assert!(
        now > 1_700_000_000_000,
        "the store's clock, in milliseconds: {now}"
    );
}
