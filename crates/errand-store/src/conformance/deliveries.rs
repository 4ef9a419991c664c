//! Subscriptions and deliveries: the fan-out cursor, claims under a lease, settling each
//! outcome (and a subscription's failure count with it), listing and pruning.

use std::time::Duration;

use errand_core::time::{to_millis, to_timestamp};
use errand_core::{
    ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryId, DeliveryState, EventId, EventType,
    JobId, JobKind, LeaseToken, NewDelivery, NewSubscription, Subscription, SubscriptionId,
    SubscriptionPatch, SubscriptionState,
};

use super::support::*;
use super::Ctx;
use crate::{
    DeliveryClaimParams, DeliveryFanoutParams, DeliveryListParams, DeliveryOutcome,
    DeliverySettleParams, SharedStore, StoreError,
};

fn new_subscription(url: &str) -> NewSubscription {
    NewSubscription {
        id: SubscriptionId::new(),
        url: url.into(),
        events: vec![EventType::JobSucceeded, EventType::JobDead],
        queue: Some(queue("billing")),
        kind: None,
        tag: Some("vip".into()),
        description: Some("the billing hook".into()),
    }
}

async fn subscribe(store: &SharedStore, url: &str) -> Subscription {
    store
        .subscription_create(new_subscription(url))
        .await
        .expect("create subscription")
}

fn delivery(subscription: Option<SubscriptionId>, job: JobId) -> NewDelivery {
    NewDelivery {
        id: DeliveryId::new(),
        subscription,
        job: Some(job),
        event_type: EventType::JobSucceeded,
        url: "https://receiver.example/hook".into(),
        body: format!(r#"{{"type":"job.succeeded","data":{{"job":{{"id":"{job}"}}}}}}"#),
    }
}

fn eid(n: u64) -> EventId {
    EventId { tx: n, seq: n * 10 }
}

/// Fans `deliveries` out as the stretch after the current cursor, which must succeed.
async fn record(store: &SharedStore, deliveries: Vec<NewDelivery>) {
    let from = store.delivery_cursor().await.expect("cursor");
    let to = eid(from.map_or(1, |c| c.tx + 1));
    assert!(
        store
            .delivery_fanout(DeliveryFanoutParams {
                from,
                to,
                deliveries,
            })
            .await
            .expect("fanout"),
        "the cursor was at {from:?}"
    );
}

async fn claim_deliveries(store: &SharedStore, max: u32) -> Vec<ClaimedDelivery> {
    store
        .delivery_claim(DeliveryClaimParams { max, lease: LEASE })
        .await
        .expect("claim deliveries")
}

fn attempt_of(c: &ClaimedDelivery, status: Option<u16>, error: Option<&str>) -> DeliveryAttempt {
    DeliveryAttempt {
        attempt: c.delivery.attempts,
        at: to_timestamp(1_700_000_000_000),
        duration_ms: 12,
        status,
        error: error.map(str::to_owned),
        response: status.map(|s| format!("answer {s}")),
    }
}

async fn settle_delivery(
    store: &SharedStore,
    c: &ClaimedDelivery,
    outcome: DeliveryOutcome,
    error: Option<&str>,
    pause_after_failures: u32,
) -> Result<Delivery, StoreError> {
    let status = if error.is_some() { 500 } else { 204 };
    store
        .delivery_settle(DeliverySettleParams {
            id: c.delivery.id,
            lease_token: c.lease_token,
            attempt: attempt_of(c, Some(status), error),
            outcome,
            pause_after_failures,
        })
        .await
}

async fn list(store: &SharedStore, params: DeliveryListParams) -> Vec<Delivery> {
    store.delivery_list(params).await.expect("list deliveries")
}

fn ids(deliveries: &[Delivery]) -> Vec<DeliveryId> {
    deliveries.iter().map(|d| d.id).collect()
}

/// A subscription round-trips, lists oldest first, takes patches (a filter removed, a
/// pause with its reason, a resume that clears reason and count), and once deleted is
/// `NotFound` everywhere; its pending deliveries go with it, its finished ones stay.
pub(crate) async fn subscriptions_are_created_updated_paused_and_deleted(Ctx { store, .. }: Ctx) {
    let before = store.clock_now().await.expect("now");
    let new = new_subscription("https://a.example/hook");
    let a = store
        .subscription_create(new.clone())
        .await
        .expect("create");
    let after = store.clock_now().await.expect("now");
    assert_eq!(a.id, new.id);
    assert_eq!(a.url, new.url);
    assert_eq!(a.events, new.events);
    assert_eq!(a.queue, new.queue);
    assert_eq!(a.kind, None);
    assert_eq!(a.tag.as_deref(), Some("vip"));
    assert_eq!(a.description.as_deref(), Some("the billing hook"));
    assert_eq!(a.state, SubscriptionState::Active);
    assert_eq!(a.paused_reason, None);
    assert_eq!(a.consecutive_failures, 0);
    let created = to_millis(a.created_at);
    assert!(
        (before..=after).contains(&created),
        "created_at is the store's now"
    );
    assert_eq!(a.updated_at, a.created_at);
    assert_eq!(store.subscription_get(a.id).await.expect("get"), a);

    let b = subscribe(&store, "https://b.example/hook").await;
    assert_eq!(
        store
            .subscription_list()
            .await
            .expect("list")
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![a.id, b.id],
        "oldest first"
    );

    let patched = store
        .subscription_update(
            a.id,
            SubscriptionPatch {
                url: Some("https://a.example/v2".into()),
                events: Some(vec![EventType::JobEnqueued]),
                queue: Some(None),
                kind: Some(Some(JobKind::parse("invoice").expect("kind"))),
                description: Some(None),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .expect("patch");
    assert_eq!(patched.url, "https://a.example/v2");
    assert_eq!(patched.events, vec![EventType::JobEnqueued]);
    assert_eq!(patched.queue, None, "Some(None) removes the filter");
    assert_eq!(patched.kind.as_ref().map(JobKind::as_str), Some("invoice"));
    assert_eq!(patched.tag.as_deref(), Some("vip"), "None leaves it");
    assert_eq!(patched.description, None);
    assert_eq!(patched.created_at, a.created_at);
    assert!(patched.updated_at >= a.updated_at);
    assert_eq!(store.subscription_get(a.id).await.expect("get"), patched);

    let paused = store
        .subscription_update(
            a.id,
            SubscriptionPatch {
                state: Some((SubscriptionState::Paused, Some("maintenance".into()))),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .expect("pause");
    assert_eq!(paused.state, SubscriptionState::Paused);
    assert_eq!(paused.paused_reason.as_deref(), Some("maintenance"));
    assert_eq!(paused.url, patched.url, "a pause changes nothing else");
    let resumed = store
        .subscription_update(
            a.id,
            SubscriptionPatch {
                state: Some((SubscriptionState::Active, None)),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .expect("resume");
    assert_eq!(resumed.state, SubscriptionState::Active);
    assert_eq!(resumed.paused_reason, None);

    // One finished and one pending delivery of `a`, one pending of `b`.
    let job = JobId::new();
    let (done, pending, other) = (
        delivery(Some(a.id), job),
        delivery(Some(a.id), job),
        delivery(Some(b.id), job),
    );
    record(&store, vec![done.clone()]).await;
    let c = claim_deliveries(&store, 10).await.remove(0);
    settle_delivery(&store, &c, DeliveryOutcome::Delivered, None, 3)
        .await
        .expect("delivered");
    record(&store, vec![pending.clone(), other.clone()]).await;

    store.subscription_delete(a.id).await.expect("delete");
    assert!(matches!(
        store.subscription_get(a.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .subscription_update(a.id, SubscriptionPatch::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.subscription_delete(a.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        ids(&list(
            &store,
            DeliveryListParams {
                job: Some(job),
                limit: 10,
                ..DeliveryListParams::default()
            }
        )
        .await),
        vec![other.id, done.id],
        "the deleted subscription's pending delivery went; its finished one stays"
    );
    assert_eq!(
        store
            .subscription_list()
            .await
            .expect("list")
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![b.id]
    );
}

/// The fan-out records a stretch's deliveries and moves the cursor only from where it is:
/// a second node fanning out from a stale cursor writes nothing.
pub(crate) async fn delivery_fanout_moves_the_cursor_once(Ctx { store, .. }: Ctx) {
    assert_eq!(store.delivery_cursor().await.expect("cursor"), None);
    let job = JobId::new();
    let first = delivery(None, job);
    let fan = |from, to, deliveries| DeliveryFanoutParams {
        from,
        to,
        deliveries,
    };
    assert!(store
        .delivery_fanout(fan(None, eid(3), vec![first.clone()]))
        .await
        .expect("fanout"));
    assert_eq!(store.delivery_cursor().await.expect("cursor"), Some(eid(3)));

    // Another node read the same stretch from the unset cursor: too late.
    let lost = delivery(None, job);
    assert!(!store
        .delivery_fanout(fan(None, eid(3), vec![lost.clone()]))
        .await
        .expect("fanout"));
    assert!(!store
        .delivery_fanout(fan(Some(eid(2)), eid(4), vec![lost]))
        .await
        .expect("fanout"));
    assert_eq!(store.delivery_cursor().await.expect("cursor"), Some(eid(3)));

    // An empty stretch still moves the cursor; the next one starts there.
    assert!(store
        .delivery_fanout(fan(Some(eid(3)), eid(5), vec![]))
        .await
        .expect("fanout"));
    let second = delivery(None, job);
    assert!(store
        .delivery_fanout(fan(Some(eid(5)), eid(7), vec![second.clone()]))
        .await
        .expect("fanout"));
    assert_eq!(store.delivery_cursor().await.expect("cursor"), Some(eid(7)));

    let listed = list(
        &store,
        DeliveryListParams {
            limit: 10,
            ..DeliveryListParams::default()
        },
    )
    .await;
    assert_eq!(ids(&listed), vec![second.id, first.id], "only the winners'");
    let d = &listed[1];
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(d.attempts, 0);
    assert_eq!(d.job, Some(job));
    assert_eq!(d.subscription, None);
    assert_eq!(d.event_type, EventType::JobSucceeded);
    assert_eq!(d.url, first.url);
    assert_eq!(d.next_at, Some(d.created_at), "due at once");
    assert_eq!(d.updated_at, d.created_at);
    assert!(d.history.is_empty());
}

/// Claims take due deliveries oldest due first, each with its body and a token, and lease
/// them: not claimable again until the lease passes, then claimable with the attempt
/// counted again, and the first claim's token no longer settles.
pub(crate) async fn delivery_claim_takes_the_oldest_due_and_leases_it(Ctx { store, clock }: Ctx) {
    let job = JobId::new();
    // `later` has the smaller id but is recorded (due) after `sooner`.
    let later = delivery(None, job);
    let sooner = delivery(None, job);
    assert!(later.id < sooner.id);
    record(&store, vec![sooner.clone()]).await;
    clock.advance(Duration::from_secs(1)).await;
    record(&store, vec![later.clone()]).await;

    let first = claim_deliveries(&store, 1).await;
    assert_eq!(first.len(), 1);
    let c = &first[0];
    assert_eq!(
        c.delivery.id, sooner.id,
        "oldest due first, not smallest id"
    );
    assert_eq!(c.body, sooner.body);
    assert_eq!(c.delivery.attempts, 1);
    assert_eq!(c.delivery.state, DeliveryState::Pending);
    let leased_until = c.delivery.next_at.expect("pending has next_at");
    assert!(leased_until >= c.delivery.updated_at);
    assert_eq!(
        to_millis(leased_until) - to_millis(c.delivery.updated_at),
        i64::try_from(LEASE.as_millis()).expect("ms"),
        "next_at moves one lease ahead"
    );

    let rest = claim_deliveries(&store, 10).await;
    assert_eq!(
        rest.iter().map(|c| c.delivery.id).collect::<Vec<_>>(),
        vec![later.id],
        "a leased delivery is not claimed again"
    );
    assert_ne!(
        rest[0].lease_token, c.lease_token,
        "each claim its own token"
    );

    clock.advance(LEASE - EARLY).await;
    assert!(
        claim_deliveries(&store, 10).await.is_empty(),
        "still leased"
    );
    clock.advance(PAST).await;
    let mut again = claim_deliveries(&store, 10).await;
    // Both leases were taken within the same instant or a millisecond apart (the store's
    // clock runs on between the two claims), so which comes first is not fixed: both are due.
    again.sort_by_key(|c| c.delivery.id != sooner.id);
    assert_eq!(
        again.iter().map(|c| c.delivery.id).collect::<Vec<_>>(),
        vec![sooner.id, later.id],
        "after the lease they are both due again"
    );
    assert_eq!(again[0].delivery.attempts, 2);
    assert!(
        again[0].delivery.history.is_empty(),
        "a sender that died recorded no attempt"
    );
    assert!(matches!(
        settle_delivery(&store, c, DeliveryOutcome::Delivered, None, 3).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let d = settle_delivery(&store, &again[0], DeliveryOutcome::Delivered, None, 3)
        .await
        .expect("the new token settles");
    assert_eq!(d.state, DeliveryState::Succeeded);
    assert_eq!(d.history.len(), 1);
    assert_eq!(d.history[0].attempt, 2, "numbered by the claim's count");
    assert!(matches!(
        store
            .delivery_settle(DeliverySettleParams {
                id: DeliveryId::new(),
                lease_token: LeaseToken::new(),
                attempt: attempt_of(&again[0], Some(204), None),
                outcome: DeliveryOutcome::Delivered,
                pause_after_failures: 3,
            })
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A paused subscription's deliveries stay put until it is resumed, and a delivery whose
/// subscription is gone is never claimed; callbacks (no subscription) go regardless.
pub(crate) async fn delivery_claim_skips_paused_subscriptions(Ctx { store, .. }: Ctx) {
    let sub = subscribe(&store, "https://s.example/hook").await;
    let job = JobId::new();
    let callback = delivery(None, job);
    let of_sub = delivery(Some(sub.id), job);
    let orphan = delivery(Some(SubscriptionId::new()), job);
    store
        .subscription_update(
            sub.id,
            SubscriptionPatch {
                state: Some((SubscriptionState::Paused, Some("by hand".into()))),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .expect("pause");
    record(
        &store,
        vec![orphan.clone(), of_sub.clone(), callback.clone()],
    )
    .await;
    let got = claim_deliveries(&store, 10).await;
    assert_eq!(
        got.iter().map(|c| c.delivery.id).collect::<Vec<_>>(),
        vec![callback.id]
    );
    store
        .subscription_update(
            sub.id,
            SubscriptionPatch {
                state: Some((SubscriptionState::Active, None)),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .expect("resume");
    let got = claim_deliveries(&store, 10).await;
    assert_eq!(
        got.iter().map(|c| c.delivery.id).collect::<Vec<_>>(),
        vec![of_sub.id],
        "resumed: its delivery goes; the orphan never does"
    );
}

/// A subscription's new URL takes its waiting deliveries along; a delivery recorded for a
/// subscription deleted meanwhile (a fan-out racing the delete) goes at the next prune.
pub(crate) async fn a_new_url_moves_pending_deliveries_and_orphans_are_pruned(
    Ctx { store, .. }: Ctx,
) {
    let sub = subscribe(&store, "https://old.example/hook").await;
    let job = JobId::new();
    let of_sub = delivery(Some(sub.id), job);
    let orphan = delivery(Some(SubscriptionId::new()), job);
    record(&store, vec![of_sub.clone(), orphan.clone()]).await;
    store
        .subscription_update(
            sub.id,
            SubscriptionPatch {
                url: Some("https://new.example/hook".into()),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .expect("new url");
    let pruned = store
        .delivery_prune(std::time::Duration::from_secs(86_400), 100)
        .await
        .expect("prune");
    assert_eq!(pruned, 1, "only the orphan goes");
    let left = list(
        &store,
        DeliveryListParams {
            job: Some(job),
            limit: 10,
            ..DeliveryListParams::default()
        },
    )
    .await;
    assert_eq!(ids(&left), vec![of_sub.id]);
    assert_eq!(left[0].url, "https://new.example/hook");
}

/// Each outcome: delivered (succeeded, no error), retry (due again after the delay, last
/// error kept), give up (failed); every attempt kept first first; a settled claim's token
/// settles nothing more.
pub(crate) async fn delivery_settle_records_each_outcome_fenced_on_the_token(
    Ctx { store, clock }: Ctx,
) {
    let job = JobId::new();
    let (ok, retried) = (delivery(None, job), delivery(None, job));
    record(&store, vec![ok.clone(), retried.clone()]).await;
    let claimed = claim_deliveries(&store, 10).await;
    assert_eq!(claimed.len(), 2);

    let d = settle_delivery(&store, &claimed[0], DeliveryOutcome::Delivered, None, 3)
        .await
        .expect("delivered");
    assert_eq!(d.id, ok.id);
    assert_eq!(d.state, DeliveryState::Succeeded);
    assert_eq!(d.last_error, None);
    assert_eq!(d.next_at, None, "only pending deliveries are due");
    assert_eq!(
        d.history,
        vec![DeliveryAttempt {
            attempt: 1,
            ..attempt_of(&claimed[0], Some(204), None)
        }]
    );
    assert!(
        matches!(
            settle_delivery(&store, &claimed[0], DeliveryOutcome::Delivered, None, 3).await,
            Err(StoreError::LeaseLost { .. })
        ),
        "a settled claim settles nothing more"
    );

    let delay = Duration::from_secs(60);
    let d = settle_delivery(
        &store,
        &claimed[1],
        DeliveryOutcome::RetryIn(delay),
        Some("HTTP 500"),
        3,
    )
    .await
    .expect("retry");
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(d.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        to_millis(d.next_at.expect("due")) - to_millis(d.updated_at),
        60_000,
        "due again after the delay"
    );
    assert!(
        matches!(
            settle_delivery(&store, &claimed[1], DeliveryOutcome::GiveUp, Some("x"), 3).await,
            Err(StoreError::LeaseLost { .. })
        ),
        "a settled claim settles nothing more"
    );
    assert!(claim_deliveries(&store, 10).await.is_empty(), "not yet due");
    clock.advance(delay - EARLY).await;
    assert!(claim_deliveries(&store, 10).await.is_empty(), "not yet due");
    clock.advance(PAST).await;
    let second = claim_deliveries(&store, 10).await.remove(0);
    assert_eq!(second.delivery.id, retried.id);
    assert_eq!(second.delivery.attempts, 2);
    assert_eq!(second.delivery.history.len(), 1, "its history comes along");

    let d = settle_delivery(
        &store,
        &second,
        DeliveryOutcome::GiveUp,
        Some("connection refused"),
        3,
    )
    .await
    .expect("give up");
    assert_eq!(d.state, DeliveryState::Failed);
    assert_eq!(d.last_error.as_deref(), Some("connection refused"));
    assert_eq!(
        d.history.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(d.history[1].error.as_deref(), Some("connection refused"));
    assert_eq!(d.history[1].status, Some(500));
    assert_eq!(d.history[1].response.as_deref(), Some("answer 500"));
    assert_eq!(d.history[1].duration_ms, 12);
    clock.advance(Duration::from_secs(3600)).await;
    assert!(
        claim_deliveries(&store, 10).await.is_empty(),
        "finished deliveries are never claimed"
    );
}

/// Failed attempts in a row pause a subscription at the threshold, with a reason naming the
/// count and the last error; a success resets the count; a resume clears both.
pub(crate) async fn delivery_failures_pause_a_subscription_and_success_resets(
    Ctx { store, .. }: Ctx,
) {
    let sub = subscribe(&store, "https://flaky.example/hook").await;
    let job = JobId::new();
    // Sends one delivery of `sub` and settles it with `error` (None: delivered).
    let send = |error: Option<&'static str>| {
        let store = store.clone();
        async move {
            record(&store, vec![delivery(Some(sub.id), job)]).await;
            let c = claim_deliveries(&store, 10).await.remove(0);
            let outcome = if error.is_some() {
                DeliveryOutcome::GiveUp
            } else {
                DeliveryOutcome::Delivered
            };
            settle_delivery(&store, &c, outcome, error, 3)
                .await
                .expect("settle");
            store.subscription_get(sub.id).await.expect("subscription")
        }
    };
    assert_eq!(send(Some("HTTP 502")).await.consecutive_failures, 1);
    let s = send(Some("HTTP 503")).await;
    assert_eq!(s.consecutive_failures, 2);
    assert_eq!(s.state, SubscriptionState::Active);
    assert_eq!(send(None).await.consecutive_failures, 0, "a success resets");
    send(Some("a")).await;
    send(Some("b")).await;
    let s = send(Some("timed out after 10s")).await;
    assert_eq!(s.state, SubscriptionState::Paused, "the third in a row");
    assert_eq!(s.consecutive_failures, 3);
    assert_eq!(
        s.paused_reason.as_deref(),
        Some("paused after 3 failed deliveries in a row; last: timed out after 10s")
    );
    let s = store
        .subscription_update(
            sub.id,
            SubscriptionPatch {
                state: Some((SubscriptionState::Active, None)),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .expect("resume");
    assert_eq!(s.state, SubscriptionState::Active);
    assert_eq!(s.paused_reason, None);
    assert_eq!(s.consecutive_failures, 0);
}

/// Lists are newest first, filtered by job and by subscription, paged with `before`, each
/// delivery with its attempts; pruning removes only finished deliveries past the cutoff,
/// attempts and all, at most `limit` per call.
pub(crate) async fn deliveries_are_listed_with_history_and_pruned(Ctx { store, clock }: Ctx) {
    let sub = subscribe(&store, "https://l.example/hook").await;
    let (j1, j2) = (JobId::new(), JobId::new());
    let ds = vec![
        delivery(None, j1),
        delivery(Some(sub.id), j1),
        delivery(Some(sub.id), j2),
        delivery(None, j2),
    ];
    record(&store, ds.clone()).await;
    let all = |limit| DeliveryListParams {
        limit,
        ..DeliveryListParams::default()
    };
    assert_eq!(
        ids(&list(&store, all(10)).await),
        ds.iter().rev().map(|d| d.id).collect::<Vec<_>>(),
        "newest first"
    );
    assert_eq!(
        ids(&list(
            &store,
            DeliveryListParams {
                job: Some(j1),
                ..all(10)
            }
        )
        .await),
        vec![ds[1].id, ds[0].id]
    );
    assert_eq!(
        ids(&list(
            &store,
            DeliveryListParams {
                subscription: Some(sub.id),
                ..all(10)
            }
        )
        .await),
        vec![ds[2].id, ds[1].id]
    );
    assert_eq!(
        ids(&list(
            &store,
            DeliveryListParams {
                job: Some(j2),
                subscription: Some(sub.id),
                ..all(10)
            }
        )
        .await),
        vec![ds[2].id]
    );
    let page = list(&store, all(2)).await;
    assert_eq!(ids(&page), vec![ds[3].id, ds[2].id]);
    assert_eq!(
        ids(&list(
            &store,
            DeliveryListParams {
                before: Some(ds[2].id),
                ..all(2)
            }
        )
        .await),
        vec![ds[1].id, ds[0].id],
        "the next page"
    );

    // Two attempts at ds[0] (retry, then delivered), one at ds[3] (given up); ds[1] and
    // ds[2] stay pending.
    let claimed = claim_deliveries(&store, 10).await;
    let by_id = |id: DeliveryId| {
        claimed
            .iter()
            .find(|c| c.delivery.id == id)
            .expect("claimed")
            .clone()
    };
    settle_delivery(
        &store,
        &by_id(ds[0].id),
        DeliveryOutcome::RetryIn(Duration::ZERO),
        Some("HTTP 500"),
        0,
    )
    .await
    .expect("retry");
    settle_delivery(
        &store,
        &by_id(ds[3].id),
        DeliveryOutcome::GiveUp,
        Some("HTTP 410"),
        0,
    )
    .await
    .expect("give up");
    let c = claim_deliveries(&store, 10).await;
    assert_eq!(
        c.iter().map(|c| c.delivery.id).collect::<Vec<_>>(),
        vec![ds[0].id]
    );
    settle_delivery(&store, &c[0], DeliveryOutcome::Delivered, None, 0)
        .await
        .expect("delivered");
    assert_eq!(
        store
            .subscription_get(sub.id)
            .await
            .expect("sub")
            .consecutive_failures,
        0,
        "callbacks count for no subscription"
    );
    let listed = list(
        &store,
        DeliveryListParams {
            job: Some(j1),
            ..all(10)
        },
    )
    .await;
    let first = listed.iter().find(|d| d.id == ds[0].id).expect("listed");
    assert_eq!(
        first
            .history
            .iter()
            .map(|a| (a.attempt, a.status))
            .collect::<Vec<_>>(),
        vec![(1, Some(500)), (2, Some(204))],
        "attempts first first"
    );
    assert_eq!(first.state, DeliveryState::Succeeded);

    let retention = Duration::from_secs(3600);
    assert_eq!(
        store.delivery_prune(retention, 100).await.expect("prune"),
        0,
        "nothing old enough"
    );
    clock.advance(retention + PAST).await;
    assert_eq!(store.delivery_prune(retention, 1).await.expect("prune"), 1);
    assert_eq!(
        store.delivery_prune(retention, 100).await.expect("prune"),
        1
    );
    assert_eq!(
        store.delivery_prune(retention, 100).await.expect("prune"),
        0
    );
    assert_eq!(
        ids(&list(&store, all(10)).await),
        vec![ds[2].id, ds[1].id],
        "pending deliveries stay, however old"
    );
    // A delivery id reused after its prune starts with no attempts: they went too.
    let reborn = NewDelivery {
        id: ds[0].id,
        ..delivery(None, j1)
    };
    record(&store, vec![reborn]).await;
    let d = list(
        &store,
        DeliveryListParams {
            job: Some(j1),
            ..all(10)
        },
    )
    .await;
    let reborn = d.iter().find(|d| d.id == ds[0].id).expect("recorded again");
    assert!(
        reborn.history.is_empty(),
        "its attempts were pruned with it"
    );
}

/// Senders racing (as nodes sharing a PostgreSQL database do): every due delivery is handed
/// out, none twice; fan-outs racing from one cursor: exactly one records its stretch.
pub(crate) async fn concurrent_delivery_claims_and_fanouts_never_double(Ctx { store, .. }: Ctx) {
    const DELIVERIES: usize = 120;
    const SENDERS: usize = 8;
    let job = JobId::new();
    record(
        &store,
        (0..DELIVERIES).map(|_| delivery(None, job)).collect(),
    )
    .await;
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let store = store.clone();
        senders.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim_deliveries(&store, 3).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.delivery.id));
            }
        });
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(mine) = senders.join_next().await {
        for id in mine.expect("sender") {
            assert!(seen.insert(id), "delivery {id} was handed out twice");
        }
    }
    assert_eq!(seen.len(), DELIVERIES, "every delivery is handed out");

    let from = store.delivery_cursor().await.expect("cursor");
    let mut fanouts = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let store = store.clone();
        fanouts.spawn(async move {
            store
                .delivery_fanout(DeliveryFanoutParams {
                    from,
                    to: eid(100),
                    deliveries: vec![delivery(None, job)],
                })
                .await
                .expect("fanout")
        });
    }
    let mut won = 0;
    while let Some(w) = fanouts.join_next().await {
        won += usize::from(w.expect("fanout"));
    }
    assert_eq!(won, 1, "one fan-out wins the stretch");
    assert_eq!(
        list(
            &store,
            DeliveryListParams {
                limit: 1000,
                ..DeliveryListParams::default()
            }
        )
        .await
        .len(),
        DELIVERIES + 1,
        "only the winner's delivery was recorded"
    );
}
