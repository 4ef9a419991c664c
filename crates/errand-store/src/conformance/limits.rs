//! Shared limits enforced at claim: a queue's concurrency and rate, a kind's concurrency
//! and rate, a rate key's rate. A job a limit holds back stays ready and is skipped; it is
//! never leased early.

use std::time::Duration;

use errand_core::queue::QueueSettingsPatch;
use errand_core::throttle::{Limit, LimitScope, RateLimit};
use errand_core::{JobKind, JobState, NewJob};

use super::support::*;
use super::Ctx;
use crate::{JobClaimParams, SharedStore, StoreError};

/// A rate long enough that no machine, however slow, refills a token during a case: only
/// an advance of the store's clock does.
const HOUR_MS: u64 = 3_600_000;

fn per_hour(limit: u32) -> RateLimit {
    RateLimit {
        limit,
        period_ms: HOUR_MS,
        burst: None,
    }
}

fn of_kind(q: &str, kind: &str) -> NewJob {
    new_job(q, kind)
}

fn with_rate_key(q: &str, key: &str) -> NewJob {
    let mut j = new_job(q, "k");
    j.ordering.rate_key = Some(key.into());
    j
}

/// Changes a queue's settings; the change must be accepted.
pub(super) async fn set_queue(store: &SharedStore, q: &str, patch: QueueSettingsPatch) {
    store
        .queue_update(&queue(q), patch)
        .await
        .expect("queue update");
}

async fn put_limit(store: &SharedStore, limit: Limit) -> errand_core::throttle::LimitInfo {
    store.limit_put(limit).await.expect("limit put")
}

fn kind_limit(name: &str, concurrency: Option<u32>, rate: Option<RateLimit>) -> Limit {
    Limit {
        scope: LimitScope::Kind,
        name: name.into(),
        concurrency,
        rate,
    }
}

fn key_limit(name: &str, rate: RateLimit) -> Limit {
    Limit {
        scope: LimitScope::Key,
        name: name.into(),
        concurrency: None,
        rate: Some(rate),
    }
}

/// A queue's concurrency caps its running jobs across claims; raising it lets more start.
pub(crate) async fn queue_concurrency_caps_running_jobs(Ctx { store, .. }: Ctx) {
    set_queue(
        &store,
        "q",
        QueueSettingsPatch {
            concurrency: Some(Some(2)),
            ..Default::default()
        },
    )
    .await;
    insert(&store, (0..5).map(|_| new_job("q", "k")).collect()).await;
    let first = claim(&store, "q", 10).await;
    assert_eq!(first.len(), 2);
    assert!(claim(&store, "q", 10).await.is_empty());
    settled(&store, complete(&first[0])).await;
    assert_eq!(claim(&store, "q", 10).await.len(), 1);
    set_queue(
        &store,
        "q",
        QueueSettingsPatch {
            concurrency: Some(Some(4)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(claim(&store, "q", 10).await.len(), 2, "raised to four");
    set_queue(
        &store,
        "q",
        QueueSettingsPatch {
            concurrency: Some(None),
            ..Default::default()
        },
    )
    .await;
    let info = store.queue_get(&queue("q")).await.expect("get");
    assert_eq!(info.settings.concurrency, None, "null removes it");
}

/// A queue's rate lets `limit` jobs start per period; the rest stay available, not
/// leased and failed, and start when the bucket refills.
pub(crate) async fn queue_rate_holds_jobs_until_tokens_refill(Ctx { store, clock }: Ctx) {
    set_queue(
        &store,
        "q",
        QueueSettingsPatch {
            rate: Some(Some(per_hour(2))),
            ..Default::default()
        },
    )
    .await;
    let jobs: Vec<_> = (0..5).map(|_| new_job("q", "k")).collect();
    insert(&store, jobs.clone()).await;
    let first = claim(&store, "q", 10).await;
    assert_eq!(first.len(), 2, "the bucket holds two");
    assert!(claim(&store, "q", 10).await.is_empty());
    let held = store.job_get(jobs[4].id).await.expect("get");
    assert_eq!(held.state, JobState::Available);
    assert_eq!(held.attempt, 0, "held back, never leased");
    clock.advance(Duration::from_millis(HOUR_MS / 2)).await;
    assert_eq!(
        claim(&store, "q", 10).await.len(),
        1,
        "half a period: one token"
    );
    clock.advance(Duration::from_millis(HOUR_MS)).await;
    assert_eq!(claim(&store, "q", 10).await.len(), 2, "a full bucket again");
}

/// A kind with concurrency 1 is a singleton across queues; other kinds are not held up.
pub(crate) async fn kind_concurrency_is_shared_across_queues(Ctx { store, .. }: Ctx) {
    put_limit(&store, kind_limit("single", Some(1), None)).await;
    insert(
        &store,
        vec![
            of_kind("q", "single"),
            of_kind("q", "single"),
            of_kind("q", "other"),
            of_kind("q2", "single"),
        ],
    )
    .await;
    let got = claim(&store, "q", 10).await;
    let kinds: Vec<&str> = got.iter().map(|c| c.job.kind.as_str()).collect();
    assert_eq!(kinds, vec!["single", "other"], "one single at a time");
    assert!(claim(&store, "q2", 10).await.is_empty(), "in any queue");
    let info = store
        .limit_get(LimitScope::Kind, "single")
        .await
        .expect("get");
    assert_eq!(info.running, 1);
    settled(&store, complete(&got[0])).await;
    assert_eq!(claim(&store, "q2", 10).await.len(), 1);
    assert!(claim(&store, "q", 10).await.is_empty());
}

/// A kind's rate holds its jobs back until its bucket refills, and a claim for just
/// that kind respects it too.
pub(crate) async fn kind_rate_holds_jobs_until_tokens_refill(Ctx { store, clock }: Ctx) {
    put_limit(&store, kind_limit("r", None, Some(per_hour(1)))).await;
    insert(&store, (0..3).map(|_| of_kind("q", "r")).collect()).await;
    assert_eq!(claim(&store, "q", 10).await.len(), 1);
    let only_r = JobClaimParams {
        queue: queue("q"),
        worker: "w1".into(),
        max: 10,
        lease: LEASE,
        kinds: vec![JobKind::parse("r").expect("kind")],
    };
    assert!(store
        .job_claim(only_r.clone())
        .await
        .expect("claim")
        .is_empty());
    let info = store.limit_get(LimitScope::Kind, "r").await.expect("get");
    assert_eq!(info.tokens, Some(0));
    clock.advance(Duration::from_millis(HOUR_MS)).await;
    assert_eq!(store.job_claim(only_r).await.expect("claim").len(), 1);
}

/// A rate key limits the starts of every job naming it, in every queue.
pub(crate) async fn rate_key_limits_starts_across_queues(Ctx { store, clock }: Ctx) {
    put_limit(&store, key_limit("api", per_hour(2))).await;
    let plain = new_job("q", "k");
    let later = with_rate_key("q2", "api");
    insert(
        &store,
        vec![
            with_rate_key("q", "api"),
            with_rate_key("q", "api"),
            with_rate_key("q", "api"),
            plain.clone(),
            later.clone(),
        ],
    )
    .await;
    let got = claim(&store, "q", 10).await;
    assert_eq!(got.len(), 3, "two api jobs and the plain one");
    assert!(ids(&got).contains(&plain.id));
    assert!(
        claim(&store, "q2", 10).await.is_empty(),
        "no api token left"
    );
    clock.advance(Duration::from_millis(HOUR_MS / 2)).await;
    assert_eq!(ids(&claim(&store, "q2", 10).await), vec![later.id]);
    let info = store.limit_get(LimitScope::Key, "api").await.expect("get");
    assert_eq!(info.running, 3, "running jobs naming the key");
}

/// Limits are created, replaced, read with their use, listed, and deleted; bad ones are
/// refused and change nothing; deleting one releases the jobs it held.
pub(crate) async fn limits_are_put_listed_and_deleted(Ctx { store, .. }: Ctx) {
    let bad = [
        Limit {
            scope: LimitScope::Key,
            name: "api".into(),
            concurrency: Some(2),
            rate: None,
        },
        kind_limit("k", None, None),
        kind_limit("k", Some(0), None),
        kind_limit(
            "k",
            None,
            Some(RateLimit {
                limit: 0,
                period_ms: 1000,
                burst: None,
            }),
        ),
        kind_limit(
            "k",
            None,
            Some(RateLimit {
                limit: 1,
                period_ms: 0,
                burst: None,
            }),
        ),
    ];
    for limit in bad {
        let r = store.limit_put(limit.clone()).await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{limit:?}: {r:?}");
    }
    assert!(store.limit_list().await.expect("list").is_empty());
    assert!(matches!(
        store.limit_get(LimitScope::Kind, "k").await,
        Err(StoreError::NotFound { .. })
    ));
    let made = put_limit(&store, kind_limit("k", Some(1), Some(per_hour(5)))).await;
    assert_eq!(made.limit.concurrency, Some(1));
    assert_eq!(made.running, 0);
    assert_eq!(made.tokens, Some(5));
    put_limit(&store, kind_limit("b", Some(3), None)).await;
    put_limit(&store, key_limit("api", per_hour(9))).await;
    insert(&store, vec![of_kind("q", "k"), of_kind("q", "k")]).await;
    assert_eq!(claim(&store, "q", 10).await.len(), 1);
    let info = store.limit_get(LimitScope::Kind, "k").await.expect("get");
    assert_eq!((info.running, info.tokens), (1, Some(4)));
    let list = store.limit_list().await.expect("list");
    let kinds: Vec<&str> = list
        .iter()
        .filter(|l| l.limit.scope == LimitScope::Kind)
        .map(|l| l.limit.name.as_str())
        .collect();
    assert_eq!(kinds, vec!["b", "k"], "by name within a scope");
    assert_eq!(list.len(), 3);
    let replaced = put_limit(&store, kind_limit("k", Some(2), None)).await;
    assert_eq!(replaced.limit, kind_limit("k", Some(2), None));
    assert_eq!(replaced.tokens, None, "no rate, no tokens");
    assert_eq!(claim(&store, "q", 10).await.len(), 1, "raised to two");
    insert(&store, vec![of_kind("q", "k")]).await;
    assert!(claim(&store, "q", 10).await.is_empty());
    store
        .limit_delete(LimitScope::Kind, "k")
        .await
        .expect("delete");
    assert_eq!(claim(&store, "q", 10).await.len(), 1, "no limit holds it");
    assert!(matches!(
        store.limit_delete(LimitScope::Kind, "k").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.limit_list().await.expect("list").len(), 2);
}
