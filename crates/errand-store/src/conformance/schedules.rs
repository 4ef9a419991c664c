//! Schedules and their slots.

use errand_core::{JobKind, JobState, NewJob};
use serde_json::json;

use super::support::*;
use crate::{JobListParams, SharedStore, StoreError};

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
pub(crate) async fn schedules_are_created_replaced_paused_and_deleted(store: SharedStore) {
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
        matches!(again, Err(StoreError::AlreadyExists { .. })),
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
pub(crate) async fn schedule_fire_is_exactly_once_per_slot(store: SharedStore) {
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
    assert!(matches!(stale, Err(StoreError::WrongState(_))), "{stale:?}");
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
pub(crate) async fn schedule_due_lists_unpaused_schedules_with_work(store: SharedStore) {
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
