//! Helpers the cases share.

use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::{JobId, JobKind, NewJob, QueueName, RetryPolicy};
use serde_json::json;

use crate::{
    ClaimedJob, InsertedJob, JobClaimParams, JobInsertManyParams, JobRescueParams,
    JobSettleManyParams, Settlement, SharedStore, Store, StoreError,
};

pub(super) fn queue(name: &str) -> QueueName {
    QueueName::parse(name).expect("test queue name")
}

/// A plain ready job of `kind` on queue `q`: what most cases, and a backend's own tests,
/// start from.
pub fn new_job(q: &str, kind: &str) -> NewJob {
    NewJob {
        secrets: Default::default(),
        flow: Default::default(),
        notify: Default::default(),
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
        ordering: Default::default(),
        inherit: Default::default(),
    }
}

pub(super) const WINDOW: Duration = Duration::from_secs(3600);

/// Enqueues `n` plain ready jobs of `kind` on queue `q` ([`new_job`]) in one call: a
/// backend's own tests fill a store with it.
pub async fn enqueue_ready(
    store: &(impl Store + ?Sized),
    q: &str,
    kind: &str,
    n: usize,
) -> Vec<InsertedJob> {
    store
        .job_insert_many(JobInsertManyParams {
            jobs: (0..n).map(|_| new_job(q, kind)).collect(),
            idempotency_window: WINDOW,
        })
        .await
        .expect("insert")
}

pub(super) async fn insert(store: &SharedStore, jobs: Vec<NewJob>) -> Vec<InsertedJob> {
    store
        .job_insert_many(JobInsertManyParams {
            jobs,
            idempotency_window: WINDOW,
        })
        .await
        .expect("insert")
}

pub(super) async fn claim_with(
    store: &SharedStore,
    q: &str,
    max: u32,
    lease: Duration,
) -> Vec<ClaimedJob> {
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

pub(super) async fn claim(store: &SharedStore, q: &str, max: u32) -> Vec<ClaimedJob> {
    claim_with(store, q, max, LEASE).await
}

pub(super) fn no_jitter() -> RetryPolicy {
    RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::default()
    }
}

pub(super) async fn settle(
    store: &SharedStore,
    s: Settlement,
) -> Result<errand_core::Job, StoreError> {
    settle_answer(store, s).await.map(|s| s.job)
}

/// One settlement's whole answer, its repeat mark included.
pub(super) async fn settle_answer(
    store: &SharedStore,
    s: Settlement,
) -> Result<crate::Settled, StoreError> {
    let mut out = store
        .job_settle_many(JobSettleManyParams {
            settlements: vec![s],
            retry_policy: no_jitter(),
        })
        .await
        .expect("settle call");
    out.pop().expect("one result")
}

/// The completion of a claimed job (result `{"ok": true}`): what most cases, and a
/// backend's own tests, settle with.
pub fn complete(c: &ClaimedJob) -> Settlement {
    Settlement::Complete {
        id: c.job.id,
        lease_token: c.lease_token,
        result: Some(json!({"ok": true})),
        report: None,
        session_state: Default::default(),
    }
}

/// Completes every job of `claimed` ([`complete`]) in one settle call; how many completed.
pub async fn complete_together(store: &(impl Store + ?Sized), claimed: &[ClaimedJob]) -> usize {
    let settled = store
        .job_settle_many(JobSettleManyParams {
            settlements: claimed.iter().map(complete).collect(),
            retry_policy: RetryPolicy::default(),
        })
        .await
        .expect("settle");
    settled.iter().filter(|r| r.is_ok()).count()
}

pub(super) fn fail(c: &ClaimedJob, retry_in: Option<Duration>, dead: bool) -> Settlement {
    Settlement::Fail {
        id: c.job.id,
        lease_token: c.lease_token,
        error: "boom".into(),
        retry_in,
        dead,
        report: None,
    }
}

pub(super) async fn rescue(store: &SharedStore) -> Vec<errand_core::Job> {
    store
        .job_rescue_expired(JobRescueParams {
            limit: 1000,
            retry_policy: no_jitter(),
        })
        .await
        .expect("rescue")
}

/// The lease cases claim with: long enough that no machine, however slow, sees it run out
/// by itself during a case, so only an advance of the store's clock ends it.
pub(super) const LEASE: Duration = Duration::from_secs(30);

/// How far short of a deadline a case checks that nothing has happened yet. The case's own
/// run time on the wall clock also moves the store's time; ten seconds is far more than any
/// step takes, so a slow machine cannot cross the deadline before the case moves the clock.
pub(super) const EARLY: Duration = Duration::from_secs(10);

/// The step that takes a clock set [`EARLY`] before a deadline a second past it.
pub(super) const PAST: Duration = Duration::from_secs(11);

/// One rescue pass, which must bring `id` back: the clock was moved past its lease or
/// timeout, so there is nothing to wait for.
pub(super) async fn rescue_one(store: &SharedStore, id: JobId) -> errand_core::Job {
    rescue(store)
        .await
        .into_iter()
        .find(|j| j.id == id)
        .unwrap_or_else(|| panic!("job {id} was not rescued"))
}

/// One job in `q` whose first attempt failed (retry at once) and whose second is claimed:
/// the first claim and the second.
pub(super) async fn second_attempt(store: &SharedStore, q: &str) -> (ClaimedJob, ClaimedJob) {
    insert(store, vec![new_job(q, "k")]).await;
    let first = claim(store, q, 1).await.remove(0);
    settle(store, fail(&first, Some(Duration::ZERO), false))
        .await
        .expect("fail");
    let second = claim(store, q, 1).await.remove(0);
    (first, second)
}

/// A ready job of queue `q` with this ordering.
pub(super) fn ordered(q: &str, ordering: errand_core::ordering::JobOrdering) -> NewJob {
    NewJob {
        ordering,
        ..new_job(q, "k")
    }
}

/// A ready job of queue `q` holding lock `key` while it runs.
pub(super) fn locked(q: &str, key: &str) -> NewJob {
    ordered(
        q,
        errand_core::ordering::JobOrdering {
            lock_key: Some(key.into()),
            ..Default::default()
        },
    )
}

/// A ready job of queue `q` under concurrency key `key` with `limit` places.
pub(super) fn keyed(q: &str, key: &str, limit: u32) -> NewJob {
    ordered(
        q,
        errand_core::ordering::JobOrdering {
            concurrency_key: Some(key.into()),
            concurrency_limit: Some(limit),
            ..Default::default()
        },
    )
}

/// A ready job of queue `q` in session `key` (a dead one blocks the session).
pub(super) fn in_session(q: &str, key: &str) -> NewJob {
    ordered(
        q,
        errand_core::ordering::JobOrdering {
            session_key: Some(key.into()),
            ..Default::default()
        },
    )
}

/// A ready job of queue `q` of tenant `key` with `weight`.
pub(super) fn tenant(q: &str, key: &str, weight: Option<u32>) -> NewJob {
    ordered(
        q,
        errand_core::ordering::JobOrdering {
            fairness_key: Some(key.into()),
            fairness_weight: weight,
            ..Default::default()
        },
    )
}

/// The ids of claimed jobs, in claim order.
pub(super) fn ids(claimed: &[ClaimedJob]) -> Vec<JobId> {
    claimed.iter().map(|c| c.job.id).collect()
}

/// One promotion pass: delayed jobs whose time came become ready (parked ones wake their
/// gate).
pub(super) async fn promote(store: &SharedStore) {
    store.job_promote_due(1000).await.expect("promote");
}

/// Settles `s`, which must take effect.
pub(super) async fn settled(store: &SharedStore, s: Settlement) -> errand_core::Job {
    settle(store, s).await.expect("settlement takes effect")
}

/// Completes `c` handing its session `state`.
pub(super) fn complete_with_state(c: &ClaimedJob, state: serde_json::Value) -> Settlement {
    Settlement::Complete {
        id: c.job.id,
        lease_token: c.lease_token,
        result: None,
        report: None,
        session_state: Some(state),
    }
}
