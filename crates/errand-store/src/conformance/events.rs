//! The event log: every job transition writes its event in the transaction of the change,
//! a job's end leaves its reply message, and readers page the log and learn what they
//! missed after pruning.

use std::time::{Duration, Instant};

use errand_core::reply::{ReplyPayload, REPLY_KIND};
use errand_core::{EndNotice, Event, EventId, EventType, JobId, JobState, Progress};
use serde_json::json;

use super::support::*;
use super::Ctx;
use crate::{
    DeadSelection, EventPruneParams, JobHeartbeatParams, ScheduleFireOutcome, ScheduleFireParams,
    SchedulePut, SchedulePutParams, SharedStore,
};

/// Every event written so far, oldest first. On PostgreSQL an event is readable only once
/// every older transaction has ended, so this writes a marker job and reads until the
/// marker's own event shows: every change committed before it is readable then too.
async fn log(store: &SharedStore) -> Vec<Event> {
    let marker = insert(store, vec![new_job("events-marker", "marker")])
        .await
        .remove(0)
        .job
        .id;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = store.event_read(after, 100).await.expect("event_read");
            let Some(last) = page.events.last() else {
                break;
            };
            after = Some(last.id);
            all.extend(page.events);
        }
        if let Some(at) = all.iter().position(|e| e.body.job_id() == Some(marker)) {
            all.truncate(at);
            // Earlier markers are not what a case looks at.
            all.retain(|e| {
                e.body
                    .job
                    .as_ref()
                    .is_none_or(|j| j.queue.as_str() != "events-marker")
            });
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "the marker's event never became readable"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The types of the events about `job`, in log order.
fn types_of(events: &[Event], job: JobId) -> Vec<EventType> {
    events
        .iter()
        .filter(|e| e.body.job_id() == Some(job))
        .map(|e| e.body.event_type)
        .collect()
}

fn progress(percent: f64) -> Progress {
    Progress {
        percent: Some(percent),
        message: Some("halfway".into()),
    }
}

/// A job's life writes one event per transition, in order, each showing the job right
/// after the change; a bare heartbeat and a repeated settle write nothing.
pub(crate) async fn each_transition_writes_its_event(Ctx { store, .. }: Ctx) {
    let id = insert(&store, vec![new_job("q", "k")])
        .await
        .remove(0)
        .job
        .id;
    let first = claim(&store, "q", 1).await.remove(0);
    for p in [Some(progress(50.0)), None] {
        store
            .job_heartbeat(JobHeartbeatParams {
                id,
                lease_token: first.lease_token,
                lease: None,
                progress: p,
                checkpoint: None,
            })
            .await
            .expect("heartbeat");
    }
    settle(&store, fail(&first, Some(Duration::ZERO), false))
        .await
        .expect("fail");
    let second = claim(&store, "q", 1).await.remove(0);
    settle(&store, complete(&second)).await.expect("complete");
    settle(&store, complete(&second))
        .await
        .expect("a repeated complete is answered");
    settle(&store, fail(&first, None, false))
        .await
        .expect("a repeated fail is answered");

    let events = log(&store).await;
    assert_eq!(
        types_of(&events, id),
        vec![
            EventType::JobEnqueued,
            EventType::JobStarted,
            EventType::JobProgress,
            EventType::JobFailed,
            EventType::JobStarted,
            EventType::JobSucceeded,
        ]
    );
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "ids grow in log order");
    let snap = |ty| {
        events
            .iter()
            .find(|e| e.body.event_type == ty)
            .and_then(|e| e.body.job.clone())
            .expect("a job event")
    };
    assert_eq!(snap(EventType::JobEnqueued).state, JobState::Available);
    assert_eq!(snap(EventType::JobStarted).attempt, 1);
    assert_eq!(
        snap(EventType::JobProgress)
            .progress
            .and_then(|p| p.percent),
        Some(50.0)
    );
    let failed = snap(EventType::JobFailed);
    assert_eq!(failed.error.as_deref(), Some("boom"));
    assert_eq!(failed.state, JobState::Available);
    let succeeded = snap(EventType::JobSucceeded);
    assert_eq!(succeeded.state, JobState::Succeeded);
    assert_eq!(succeeded.attempt, 2);
    assert_eq!(succeeded.result, Some(json!({"ok": true})));
}

/// Cancel, death (by a failure or a lease run out), retry and dead requeue each write the
/// event named for them; releasing a claim writes none; an idempotent repeat writes none.
pub(crate) async fn cancel_dead_retry_and_rescue_write_their_events(Ctx { store, clock }: Ctx) {
    let once = |q: &str| errand_core::NewJob {
        max_attempts: 1,
        ..new_job(q, "k")
    };
    let cancelled = insert(&store, vec![new_job("c", "k")])
        .await
        .remove(0)
        .job
        .id;
    store.job_cancel(cancelled).await.expect("cancel");

    insert(&store, vec![once("d")]).await;
    let d = claim(&store, "d", 1).await.remove(0);
    settle(&store, fail(&d, None, false)).await.expect("fail");
    store.job_retry(d.job.id).await.expect("retry");

    insert(&store, vec![new_job("r", "k")]).await;
    let r = claim(&store, "r", 1).await.remove(0);
    settle(&store, fail(&r, None, true)).await.expect("dead");
    let n = store
        .dead_requeue_many(DeadSelection::Queue(queue("r")))
        .await
        .expect("requeue");
    assert_eq!(n, 1);

    insert(&store, vec![new_job("l", "k"), once("l")]).await;
    let leased = claim(&store, "l", 2).await;
    clock.advance(LEASE + PAST).await;
    assert_eq!(rescue(&store).await.len(), 2);

    insert(&store, vec![new_job("u", "k")]).await;
    let u = claim(&store, "u", 1).await.remove(0);
    store
        .job_release_many(crate::JobReleaseManyParams {
            leases: vec![(u.job.id, u.lease_token)],
        })
        .await
        .expect("release");

    let keyed = errand_core::NewJob {
        idempotency_key: Some("once".into()),
        ..new_job("i", "k")
    };
    let first = insert(&store, vec![keyed.clone()]).await.remove(0);
    let again = insert(
        &store,
        vec![errand_core::NewJob {
            id: JobId::new(),
            ..keyed
        }],
    )
    .await
    .remove(0);
    assert!(!again.inserted);

    use EventType::*;
    let events = log(&store).await;
    assert_eq!(
        types_of(&events, cancelled),
        vec![JobEnqueued, JobCancelled]
    );
    assert_eq!(
        types_of(&events, d.job.id),
        vec![JobEnqueued, JobStarted, JobDead, JobEnqueued]
    );
    assert_eq!(
        types_of(&events, r.job.id),
        vec![JobEnqueued, JobStarted, JobDead, JobEnqueued]
    );
    let expired: Vec<Vec<EventType>> = leased.iter().map(|c| types_of(&events, c.job.id)).collect();
    assert!(
        expired.contains(&vec![JobEnqueued, JobStarted, JobFailed])
            && expired.contains(&vec![JobEnqueued, JobStarted, JobDead]),
        "{expired:?}"
    );
    assert_eq!(types_of(&events, u.job.id), vec![JobEnqueued, JobStarted]);
    assert_eq!(types_of(&events, first.job.id), vec![JobEnqueued]);
}

/// A job with `reply_to` leaves exactly one `errand.reply` message there when it ends, in
/// the transaction that ends it; a repeated settle leaves no second one.
pub(crate) async fn a_job_that_ends_leaves_one_reply(Ctx { store, .. }: Ctx) {
    let notify = EndNotice {
        reply_to: Some(queue("replies")),
        correlation_id: Some("req-1".into()),
        callback_url: Some("https://example.com/hook".into()),
    };
    let asked = errand_core::NewJob {
        notify: notify.clone(),
        ..new_job("work", "k")
    };
    let id = insert(&store, vec![asked]).await.remove(0).job.id;
    let got = store.job_get(id).await.expect("get");
    assert_eq!(got.reply_to, notify.reply_to);
    assert_eq!(got.correlation_id, notify.correlation_id);
    assert_eq!(got.callback_url, notify.callback_url);
    assert!(
        claim(&store, "replies", 10).await.is_empty(),
        "no reply before the end"
    );

    let c = claim(&store, "work", 1).await.remove(0);
    assert_eq!(c.job.correlation_id.as_deref(), Some("req-1"));
    let done = settle(&store, complete(&c)).await.expect("complete");
    settle(&store, complete(&c)).await.expect("repeat");

    let replies = claim(&store, "replies", 10).await;
    assert_eq!(replies.len(), 1, "one reply, never two");
    let reply = &replies[0].job;
    assert_eq!(reply.kind.as_str(), REPLY_KIND);
    assert_eq!(reply.correlation_id.as_deref(), Some("req-1"));
    let payload: ReplyPayload = serde_json::from_value(reply.payload.clone()).expect("payload");
    assert_eq!(payload.job_id, id);
    assert_eq!(payload.correlation_id.as_deref(), Some("req-1"));
    assert_eq!(payload.state, JobState::Succeeded);
    assert_eq!(payload.result, done.result);
    assert_eq!(payload.queue.as_str(), "work");

    // Cancelled and dead jobs reply too, with how they ended.
    let cancelled = errand_core::NewJob {
        notify: notify.clone(),
        ..new_job("work", "k")
    };
    let cancelled = insert(&store, vec![cancelled]).await.remove(0).job.id;
    store.job_cancel(cancelled).await.expect("cancel");
    let dies = errand_core::NewJob {
        notify,
        max_attempts: 1,
        ..new_job("work", "k")
    };
    insert(&store, vec![dies]).await;
    let d = claim(&store, "work", 1).await.remove(0);
    settle(&store, fail(&d, None, false)).await.expect("fail");
    let mut ends: Vec<(JobId, JobState, Option<String>)> = claim(&store, "replies", 10)
        .await
        .into_iter()
        .map(|c| {
            let p: ReplyPayload = serde_json::from_value(c.job.payload).expect("payload");
            (p.job_id, p.state, p.error)
        })
        .collect();
    ends.sort_by_key(|e| e.0);
    let mut want = vec![
        (cancelled, JobState::Cancelled, None),
        (d.job.id, JobState::Dead, Some("boom".to_string())),
    ];
    want.sort_by_key(|e| e.0);
    assert_eq!(ends, want);

    let events = log(&store).await;
    assert_eq!(
        types_of(&events, replies[0].job.id),
        vec![EventType::JobEnqueued, EventType::JobStarted],
        "a reply is an ordinary job with its own events"
    );
    assert_eq!(
        types_of(&events, id),
        vec![
            EventType::JobEnqueued,
            EventType::JobStarted,
            EventType::JobSucceeded
        ]
    );
}

/// Firing a schedule's slot writes the job's `job.enqueued` and a `schedule.fired` naming
/// the slot; a slot that already had its job writes nothing.
pub(crate) async fn a_fired_slot_writes_schedule_fired(Ctx { store, .. }: Ctx) {
    use errand_core::schedule_spec::{CatchUpPolicy, JobTemplate, OverlapPolicy, ScheduleSpec};
    let name = errand_core::ScheduleName::parse("ticker").expect("name");
    store
        .schedule_put(SchedulePutParams {
            spec: ScheduleSpec {
                name: name.clone(),
                cron: None,
                every_ms: Some(1000),
                timezone: "UTC".into(),
                job: JobTemplate {
                    kind: errand_core::JobKind::parse("tick").expect("kind"),
                    queue: queue("ticks"),
                    payload: json!({}),
                    priority: 0,
                    max_attempts: 3,
                    timeout_ms: None,
                    tags: vec![],
                },
                overlap: OverlapPolicy::Allow,
                catch_up: CatchUpPolicy::Once,
                catch_up_window_ms: 3_600_000,
                jitter_ms: 0,
                singleton: false,
            },
            next_fire_at: Some(5_000),
            mode: SchedulePut::Create,
        })
        .await
        .expect("create");
    let slot_job = || errand_core::NewJob {
        slot: Some(errand_core::job::ScheduleSlot {
            schedule: "ticker".into(),
            at: 5_000,
        }),
        ..new_job("ticks", "tick")
    };
    let fire = |expected: Option<i64>| ScheduleFireParams {
        name: name.clone(),
        expected_next_fire_at: expected,
        expected_last_job_id: None,
        expected_updated_at: None,
        jobs: vec![slot_job()],
        next_fire_at: Some(6_000),
        buffered_slot: None,
        cancel: None,
        idempotency_window: WINDOW,
    };
    let outcome = store
        .schedule_fire_many(vec![fire(Some(5_000))])
        .await
        .expect("fire")
        .remove(0);
    let ScheduleFireOutcome::Fired { jobs, .. } = outcome else {
        panic!("the first fire applies: {outcome:?}");
    };
    let job = jobs[0].id;
    // The same slot again (the schedule's cursor moved on): its job is not made twice.
    let outcome = store
        .schedule_fire_many(vec![ScheduleFireParams {
            expected_last_job_id: Some(job),
            expected_updated_at: None,
            ..fire(Some(6_000))
        }])
        .await
        .expect("fire again")
        .remove(0);
    assert!(
        matches!(&outcome, ScheduleFireOutcome::Fired { jobs, .. } if jobs.is_empty()),
        "{outcome:?}"
    );

    let events = log(&store).await;
    assert_eq!(
        types_of(&events, job),
        vec![EventType::JobEnqueued, EventType::ScheduleFired]
    );
    let fired = events
        .iter()
        .find_map(|e| e.body.schedule.clone())
        .expect("schedule.fired");
    assert_eq!(fired.schedule, "ticker");
    assert_eq!(fired.job_id, job);
    assert_eq!(errand_core::time::to_millis(fired.slot), 5_000);
}

/// Readers page the log after a cursor; the head is the newest event; pruning by count and
/// by age deletes the oldest, never past `keep_after`, and a reader whose cursor fell into
/// the pruned stretch is told the newest id it missed.
pub(crate) async fn event_log_pages_prunes_and_reports_what_was_missed(Ctx { store, clock }: Ctx) {
    assert!(store
        .event_read(None, 10)
        .await
        .expect("read")
        .events
        .is_empty());
    insert(&store, (0..10).map(|_| new_job("p", "k")).collect()).await;
    let all = log(&store).await;
    assert_eq!(all.len(), 10);
    let head = store.event_head().await.expect("head").expect("an event");
    assert!(head >= all[9].id, "the head is the newest event");

    // Pages of three, each after the last one's id.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.event_read(after, 3).await.expect("page");
        assert!(page.missed_through.is_none());
        assert!(page.events.len() <= 3);
        let Some(last) = page.events.last() else {
            break;
        };
        after = Some(last.id);
        paged.extend(
            page.events
                .into_iter()
                .filter(|e| all.iter().any(|a| a.id == e.id)),
        );
    }
    assert_eq!(paged, all);

    // By count: of the ten (and the marker log wrote), only the newest four stay... but
    // never any after `keep_after`, so the first call stops at the sixth.
    let pruned = store
        .event_prune(EventPruneParams {
            older_than: Duration::from_secs(3600),
            keep_at_most: 4,
            keep_after: Some(all[5].id),
            limit: 1000,
        })
        .await
        .expect("prune");
    assert_eq!(pruned, 6);
    let behind = store.event_read(Some(all[1].id), 100).await.expect("read");
    assert_eq!(behind.missed_through, Some(all[5].id));
    assert_eq!(behind.events.first().map(|e| e.id), Some(all[6].id));
    let current = store.event_read(Some(all[5].id), 100).await.expect("read");
    assert_eq!(current.missed_through, None);
    assert_eq!(current.events.first().map(|e| e.id), Some(all[6].id));
    let fresh = store.event_read(None, 100).await.expect("read");
    assert_eq!(
        fresh.missed_through, None,
        "a reader without a cursor missed nothing"
    );
    assert_eq!(fresh.events.first().map(|e| e.id), Some(all[6].id));

    // By age, at most `limit` at a time.
    clock.advance(Duration::from_secs(120)).await;
    let pruned = store
        .event_prune(EventPruneParams {
            older_than: Duration::from_secs(60),
            keep_at_most: 1000,
            keep_after: None,
            limit: 2,
        })
        .await
        .expect("prune by age");
    assert_eq!(pruned, 2);
    let behind = store.event_read(Some(all[5].id), 100).await.expect("read");
    assert_eq!(behind.missed_through, Some(all[7].id));
    assert_eq!(behind.events.first().map(|e| e.id), Some(all[8].id));
    // Young events stay whatever the limit.
    insert(&store, vec![new_job("p", "k")]).await;
    let young = log(&store).await;
    store
        .event_prune(EventPruneParams {
            older_than: Duration::from_secs(60),
            keep_at_most: 1000,
            keep_after: None,
            limit: 1000,
        })
        .await
        .expect("prune by age");
    let left = log(&store).await;
    assert_eq!(
        left.last().map(|e| e.id),
        young.last().map(|e| e.id),
        "the young event stays"
    );
    assert!(left.iter().all(|e| e.id > all[9].id));
}
