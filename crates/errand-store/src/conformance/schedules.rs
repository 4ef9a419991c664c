//! Schedules and their slots.

use std::time::Duration;

use errand_core::{JobId, JobKind, JobState, NewJob, ScheduleName};
use serde_json::json;

use super::support::*;
use super::Ctx;
use crate::{
    JobListParams, ScheduleFireOutcome, ScheduleFireParams, SchedulePut, SchedulePutParams,
    ScheduleSlotListParams, ScheduleSlotPruneParams, ScheduleSlotRecord, SharedStore, StoreError,
};

fn name(s: &str) -> ScheduleName {
    ScheduleName::parse(s).expect("schedule name")
}

pub(super) fn spec(n: &str) -> errand_core::schedule_spec::ScheduleSpec {
    use errand_core::schedule_spec::{CatchUpPolicy, JobTemplate, OverlapPolicy, ScheduleSpec};
    ScheduleSpec {
        name: name(n),
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
        singleton: false,
    }
}

async fn create(
    store: &SharedStore,
    n: &str,
    next: Option<i64>,
) -> errand_core::schedule_spec::Schedule {
    store
        .schedule_put(SchedulePutParams {
            spec: spec(n),
            next_fire_at: next,
            mode: SchedulePut::Create,
        })
        .await
        .expect("create")
        .schedule
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
    n: &str,
    expected: Option<i64>,
    jobs: Vec<NewJob>,
    next: Option<i64>,
) -> ScheduleFireParams {
    ScheduleFireParams {
        name: name(n),
        expected_next_fire_at: expected,
        expected_last_job_id: None,
        expected_updated_at: None,
        jobs,
        next_fire_at: next,
        buffered_slot: None,
        cancel: None,
        idempotency_window: WINDOW,
    }
}

async fn fire_one(store: &SharedStore, p: ScheduleFireParams) -> ScheduleFireOutcome {
    let mut out = store.schedule_fire_many(vec![p]).await.expect("fire");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn fired(outcome: ScheduleFireOutcome) -> Vec<errand_core::Job> {
    match outcome {
        ScheduleFireOutcome::Fired { jobs, .. } => jobs,
        ScheduleFireOutcome::Moved => panic!("expected the fire to apply, it was moved"),
    }
}

/// Schedules are created once, replaced, paused, listed and deleted.
pub(crate) async fn schedules_are_created_replaced_paused_and_deleted(Ctx { store, .. }: Ctx) {
    let created = create(&store, "nightly", Some(5_000)).await;
    assert_eq!(created.spec, spec("nightly"));
    assert_eq!(
        created.next_fire_at.map(|t| t.as_millisecond()),
        Some(5_000)
    );
    assert!(!created.paused);
    let again = store
        .schedule_put(SchedulePutParams {
            spec: spec("nightly"),
            next_fire_at: Some(5_000),
            mode: SchedulePut::Create,
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "create twice: {again:?}"
    );
    let mut changed = spec("nightly");
    changed.every_ms = Some(60_000);
    let replaced = store
        .schedule_put(SchedulePutParams {
            spec: changed.clone(),
            next_fire_at: Some(60_000),
            mode: SchedulePut::Replace,
        })
        .await
        .expect("replace")
        .schedule;
    assert_eq!(replaced.spec, changed);
    assert_eq!(
        replaced.created_at, created.created_at,
        "replacing keeps the history"
    );
    create(&store, "hourly", None).await;
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
            .schedule_pause(&name("nightly"))
            .await
            .expect("pause")
            .schedule
            .paused
    );
    assert!(
        !store
            .schedule_resume(&name("nightly"))
            .await
            .expect("resume")
            .paused
    );
    assert!(matches!(
        store.schedule_resume(&name("ghost")).await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .schedule_delete(&name("nightly"))
        .await
        .expect("delete");
    assert!(matches!(
        store.schedule_get(&name("nightly")).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.schedule_delete(&name("nightly")).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A slot gets one job however often it is fired, and a scheduler that read a stale
/// `next_fire_at` changes nothing and hears `Moved`, not an error.
pub(crate) async fn schedule_fire_is_exactly_once_per_slot(Ctx { store, .. }: Ctx) {
    create(&store, "tick", Some(1_000)).await;
    let first = fired(
        fire_one(
            &store,
            fire_params(
                "tick",
                Some(1_000),
                vec![slot_job("tick", 1_000)],
                Some(2_000),
            ),
        )
        .await,
    );
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].schedule.as_deref(), Some("tick"));
    assert_eq!(first[0].slot.map(|t| t.as_millisecond()), Some(1_000));
    let stale = fire_one(
        &store,
        fire_params(
            "tick",
            Some(1_000),
            vec![slot_job("tick", 1_000)],
            Some(2_000),
        ),
    )
    .await;
    assert_eq!(stale, ScheduleFireOutcome::Moved);
    let repeat = fired(
        fire_one(
            &store,
            ScheduleFireParams {
                expected_last_job_id: Some(first[0].id),
                expected_updated_at: None,
                ..fire_params(
                    "tick",
                    Some(2_000),
                    vec![slot_job("tick", 1_000), slot_job("tick", 2_000)],
                    Some(3_000),
                )
            },
        )
        .await,
    );
    assert_eq!(repeat.len(), 1, "slot 1000 already had its job");
    assert_eq!(repeat[0].slot.map(|t| t.as_millisecond()), Some(2_000));
    let got = store.job_get(first[0].id).await.expect("get");
    assert_eq!(got.schedule.as_deref(), Some("tick"));
    let s = store.schedule_get(&name("tick")).await.expect("schedule");
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
    let gone = fire_one(&store, fire_params("nope", None, vec![], None)).await;
    assert_eq!(gone, ScheduleFireOutcome::Moved, "a deleted schedule");
}

/// Many schedules fire in one call, each on its own compare-and-set: one stale decision
/// does not stop the others.
pub(crate) async fn schedule_fire_many_applies_each_decision_on_its_own(Ctx { store, .. }: Ctx) {
    for n in ["a", "b", "c"] {
        create(&store, n, Some(1_000)).await;
    }
    let outcomes = store
        .schedule_fire_many(vec![
            fire_params("a", Some(1_000), vec![slot_job("a", 1_000)], Some(2_000)),
            fire_params("b", Some(999), vec![slot_job("b", 1_000)], Some(2_000)),
            fire_params("c", Some(1_000), vec![slot_job("c", 1_000)], Some(2_000)),
        ])
        .await
        .expect("fire");
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[1], ScheduleFireOutcome::Moved);
    for (i, n) in [(0, "a"), (2, "c")] {
        let jobs = fired(outcomes[i].clone());
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].schedule.as_deref(), Some(n));
        let s = store.schedule_get(&name(n)).await.expect("get");
        assert_eq!(s.last_job_id, Some(jobs[0].id));
        assert_eq!(s.next_fire_at.map(|t| t.as_millisecond()), Some(2_000));
    }
    let b = store.schedule_get(&name("b")).await.expect("get");
    assert_eq!(b.next_fire_at.map(|t| t.as_millisecond()), Some(1_000));
    assert_eq!(b.last_job_id, None);
}

/// `replace` cancels the running job in the transaction that fires, and only when the
/// compare-and-set holds: a lost race leaves the old run alone.
pub(crate) async fn schedule_fire_cancels_only_when_it_wins(Ctx { store, .. }: Ctx) {
    create(&store, "r", Some(1_000)).await;
    let old = fired(
        fire_one(
            &store,
            fire_params("r", Some(1_000), vec![slot_job("r", 1_000)], Some(2_000)),
        )
        .await,
    );
    let running = claim(&store, "ticks", 1).await;
    assert_eq!(running[0].job.id, old[0].id);
    let lost = fire_one(
        &store,
        ScheduleFireParams {
            expected_last_job_id: Some(old[0].id),
            expected_updated_at: None,
            cancel: Some(old[0].id),
            // Stale: another node moved next_fire_at past 1,000 already.
            ..fire_params("r", Some(1_000), vec![slot_job("r", 2_000)], Some(3_000))
        },
    )
    .await;
    assert_eq!(lost, ScheduleFireOutcome::Moved);
    assert_eq!(
        store.job_get(old[0].id).await.expect("get").state,
        JobState::Running,
        "a lost compare-and-set cancels nothing"
    );
    let won = fire_one(
        &store,
        ScheduleFireParams {
            expected_last_job_id: Some(old[0].id),
            expected_updated_at: None,
            cancel: Some(old[0].id),
            ..fire_params("r", Some(2_000), vec![slot_job("r", 2_000)], Some(3_000))
        },
    )
    .await;
    let ScheduleFireOutcome::Fired { jobs, cancelled } = won else {
        panic!("expected the fire to apply: {won:?}");
    };
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        cancelled.map(|j| (j.id, j.state)),
        Some((old[0].id, JobState::Cancelled))
    );
    let s = store.schedule_get(&name("r")).await.expect("get");
    assert_eq!(s.last_job_id, Some(jobs[0].id));
}

/// A manual run (a job without a slot) becomes the schedule's last job, so the overlap
/// policy sees it; it leaves `last_fire_at` alone.
pub(crate) async fn schedule_manual_run_becomes_the_last_job(Ctx { store, .. }: Ctx) {
    create(&store, "m", Some(5_000)).await;
    let manual = new_job("ticks", "tick");
    let jobs = fired(
        fire_one(
            &store,
            fire_params("m", Some(5_000), vec![manual], Some(5_000)),
        )
        .await,
    );
    assert_eq!(jobs.len(), 1);
    let s = store.schedule_get(&name("m")).await.expect("get");
    assert_eq!(s.last_job_id, Some(jobs[0].id));
    assert_eq!(s.last_job_state, Some(JobState::Available));
    assert_eq!(s.last_fire_at, None);
    assert_eq!(s.next_fire_at.map(|t| t.as_millisecond()), Some(5_000));
    let stale = fire_one(&store, fire_params("m", Some(5_000), vec![], Some(6_000))).await;
    assert_eq!(
        stale,
        ScheduleFireOutcome::Moved,
        "a decision made before the manual run does not apply"
    );
}

/// Due means: not paused, and a slot whose time has come (on the store's clock), or a
/// buffered slot whose last job has ended. A buffered slot waiting for a running job is not
/// due: waiting must cost no write.
pub(crate) async fn schedule_due_lists_unpaused_schedules_with_work(Ctx { store, clock }: Ctx) {
    let start = store.clock_now().await.expect("clock");
    let soon = Duration::from_secs(60);
    let soon_ms = i64::try_from(soon.as_millis()).expect("ms");
    create(&store, "past", Some(0)).await;
    create(&store, "paused", Some(0)).await;
    store.schedule_pause(&name("paused")).await.expect("pause");
    create(&store, "soon", Some(start + soon_ms)).await;
    create(&store, "future", Some(i64::MAX / 2)).await;
    create(&store, "never", None).await;
    let (now, due) = store.schedule_due(100, Duration::ZERO).await.expect("due");
    let names: Vec<String> = due.iter().map(|s| s.spec.name.to_string()).collect();
    assert_eq!(names, vec!["past".to_string()]);
    assert!(
        now > 1_700_000_000_000,
        "the store's clock, in milliseconds: {now}"
    );
    let clock_now = store.clock_now().await.expect("clock");
    assert!(
        clock_now >= now,
        "the store's clock moves on: {clock_now} < {now}"
    );
    clock.advance(soon).await;
    let (now, due) = store.schedule_due(100, Duration::ZERO).await.expect("due");
    let mut names: Vec<String> = due.iter().map(|s| s.spec.name.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["past".to_string(), "soon".to_string()]);
    assert!(now >= start + soon_ms, "due reads the store's clock");
    assert!(store.clock_now().await.expect("clock") >= start + soon_ms);
}

/// A `buffer_one` schedule whose last job runs and whose only work is the buffered slot is
/// left out of `schedule_due`; once that job ends, it is due again.
pub(crate) async fn schedule_due_leaves_out_a_buffered_slot_while_its_job_runs(
    Ctx { store, .. }: Ctx,
) {
    let far = i64::MAX / 2;
    create(&store, "buffered", Some(1_000)).await;
    let job = fired(
        fire_one(
            &store,
            ScheduleFireParams {
                buffered_slot: Some(2_000),
                ..fire_params(
                    "buffered",
                    Some(1_000),
                    vec![slot_job("buffered", 1_000)],
                    Some(far),
                )
            },
        )
        .await,
    );
    let (_, due) = store.schedule_due(100, Duration::ZERO).await.expect("due");
    assert!(due.is_empty(), "the last job has not ended (available)");
    let claimed = claim(&store, "ticks", 1).await;
    assert_eq!(claimed[0].job.id, job[0].id);
    let (_, due) = store.schedule_due(100, Duration::ZERO).await.expect("due");
    assert!(
        due.is_empty(),
        "the buffered slot waits for the running job: {:?}",
        due.iter()
            .map(|s| s.spec.name.to_string())
            .collect::<Vec<_>>()
    );
    let wait = store
        .due_in(crate::DueWork::Fire {
            ahead: Duration::ZERO,
        })
        .await
        .expect("due in");
    assert!(
        wait.is_some_and(|w| w > Duration::from_secs(3600)),
        "nothing to fire while the run goes on: {wait:?}"
    );
    settle(&store, complete(&claimed[0]))
        .await
        .expect("complete");
    let (_, due) = store.schedule_due(100, Duration::ZERO).await.expect("due");
    assert_eq!(due.len(), 1, "the run ended: the buffered slot is due");
    assert_eq!(
        store
            .due_in(crate::DueWork::Fire {
                ahead: Duration::ZERO
            })
            .await
            .expect("due in"),
        Some(Duration::ZERO),
        "the scheduler is told the freed slot is due now"
    );
    assert_eq!(
        due[0].buffered_slot.map(|t| t.as_millisecond()),
        Some(2_000)
    );
}

/// The slot ledger is listed in pages, restored (repeatably) and pruned by age on the
/// store's clock.
pub(crate) async fn schedule_slots_are_listed_restored_and_pruned(Ctx { store, .. }: Ctx) {
    let now = store.clock_now().await.expect("clock");
    let day = 86_400_000;
    create(&store, "ledger", Some(1_000)).await;
    let old = fired(
        fire_one(
            &store,
            fire_params(
                "ledger",
                Some(1_000),
                vec![
                    slot_job("ledger", now - 10 * day),
                    slot_job("ledger", now - 9 * day),
                ],
                Some(now - day),
            ),
        )
        .await,
    );
    assert_eq!(old.len(), 2);
    let restored = vec![
        ScheduleSlotRecord {
            schedule: name("ledger"),
            slot: now - 2 * day,
            job_id: JobId::new(),
        },
        ScheduleSlotRecord {
            schedule: name("ledger"),
            slot: now - 9 * day,
            job_id: JobId::new(),
        },
    ];
    let n = store
        .schedule_slot_restore_many(restored.clone())
        .await
        .expect("restore");
    assert_eq!(n, 1, "a recorded slot is kept as it was");
    assert_eq!(
        store
            .schedule_slot_restore_many(restored)
            .await
            .expect("again"),
        0,
        "repeatable"
    );
    let page = |after| ScheduleSlotListParams {
        schedule: name("ledger"),
        after,
        limit: 2,
    };
    let first = store.schedule_slot_list(page(None)).await.expect("list");
    assert_eq!(
        first.iter().map(|s| s.slot).collect::<Vec<_>>(),
        vec![now - 10 * day, now - 9 * day]
    );
    assert_eq!(first[0].job_id, old[0].id);
    let second = store
        .schedule_slot_list(page(Some(now - 9 * day)))
        .await
        .expect("list");
    assert_eq!(
        second.iter().map(|s| s.slot).collect::<Vec<_>>(),
        vec![now - 2 * day]
    );
    let pruned = store
        .schedule_slot_prune(ScheduleSlotPruneParams {
            older_than: std::time::Duration::from_secs(7 * 86_400),
            limit: 1,
        })
        .await
        .expect("prune");
    assert_eq!(pruned, 1, "at most the limit, oldest first");
    let pruned = store
        .schedule_slot_prune(ScheduleSlotPruneParams {
            older_than: std::time::Duration::from_secs(7 * 86_400),
            limit: 100,
        })
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    let left = store.schedule_slot_list(page(None)).await.expect("list");
    assert_eq!(
        left.iter().map(|s| s.slot).collect::<Vec<_>>(),
        vec![now - 2 * day]
    );
}

/// A fire of slots older than the last fire (a backfill) records nothing on the schedule:
/// the last fire never goes back and the overlap policy keeps watching the newest run.
pub(crate) async fn schedule_fire_of_older_slots_keeps_the_newest_run(Ctx { store, .. }: Ctx) {
    create(&store, "late", Some(10_000)).await;
    let newest = fired(
        fire_one(
            &store,
            fire_params(
                "late",
                Some(10_000),
                vec![slot_job("late", 10_000)],
                Some(11_000),
            ),
        )
        .await,
    );
    let backfill = fired(
        fire_one(
            &store,
            ScheduleFireParams {
                expected_last_job_id: Some(newest[0].id),
                expected_updated_at: None,
                ..fire_params(
                    "late",
                    Some(11_000),
                    vec![slot_job("late", 3_000), slot_job("late", 4_000)],
                    Some(11_000),
                )
            },
        )
        .await,
    );
    assert_eq!(backfill.len(), 2);
    let s = store.schedule_get(&name("late")).await.expect("get");
    assert_eq!(
        s.last_job_id,
        Some(newest[0].id),
        "the newest run stays the last job"
    );
    assert_eq!(
        s.last_fire_at.map(|t| t.as_millisecond()),
        Some(10_000),
        "the last fire does not go back"
    );
}

/// A schedule that fires ahead (`overlap: allow`) is due `ahead` before its slot, in
/// `schedule_due` and in `due_in`; any other waits for its slot.
pub(crate) async fn schedule_due_counts_the_lead_only_for_schedules_that_fire_ahead(
    Ctx { store, .. }: Ctx,
) {
    use errand_core::schedule_spec::OverlapPolicy;
    let now = store.clock_now().await.expect("clock");
    create(&store, "ahead", Some(now + 30_000)).await;
    let mut at_slot = spec("at-slot");
    at_slot.overlap = OverlapPolicy::Skip;
    store
        .schedule_put(SchedulePutParams {
            spec: at_slot,
            next_fire_at: Some(now + 20_000),
            mode: SchedulePut::Create,
        })
        .await
        .expect("create");
    let due_names = |due: Vec<errand_core::schedule_spec::Schedule>| -> Vec<String> {
        due.iter().map(|s| s.spec.name.to_string()).collect()
    };
    let (_, due) = store
        .schedule_due(100, Duration::from_secs(60))
        .await
        .expect("due");
    assert_eq!(due_names(due), vec!["ahead".to_string()]);
    let (_, due) = store
        .schedule_due(100, Duration::from_secs(10))
        .await
        .expect("due");
    assert!(
        due.is_empty(),
        "a slot beyond the lead waits: {:?}",
        due_names(due)
    );
    let due_in = |ahead: u64| {
        let store = store.clone();
        async move {
            store
                .due_in(crate::DueWork::Fire {
                    ahead: Duration::from_secs(ahead),
                })
                .await
                .expect("due in")
                .expect("something is due")
        }
    };
    assert_eq!(due_in(60).await, Duration::ZERO);
    let lead_25 = due_in(25).await;
    assert!(
        lead_25 <= Duration::from_secs(5) && lead_25 > Duration::from_secs(4),
        "30 s to the slot less a 25 s lead: {lead_25:?}"
    );
    let no_lead = due_in(0).await;
    assert!(
        no_lead <= Duration::from_secs(20) && no_lead > Duration::from_secs(19),
        "the other schedule's slot in 20 s: {no_lead:?}"
    );
}

/// Pausing, replacing or deleting a schedule takes back the jobs it wrote ahead for slots
/// still to come: each is cancelled, its slot freed (a later pass may write it again), and
/// the schedule's next slot goes back to it. Jobs of slots that came stay. A paused schedule
/// writes nothing ahead, though a run by hand still goes.
pub(crate) async fn schedule_changes_take_back_jobs_written_ahead(Ctx { store, .. }: Ctx) {
    let now = store.clock_now().await.expect("clock");
    let (past, slot) = (now - 1_000, now + 60_000);
    create(&store, "a", Some(past)).await;
    let ahead = |at: i64| NewJob {
        run_at: errand_core::job::RunAt::At(at),
        ..slot_job("a", at)
    };
    let write_ahead = |last: Option<JobId>| ScheduleFireParams {
        expected_last_job_id: last,
        expected_updated_at: None,
        ..fire_params("a", Some(slot), vec![ahead(slot)], Some(slot + 1_000))
    };
    let came = fire_params("a", Some(past), vec![slot_job("a", past)], Some(slot));
    let came = fired(fire_one(&store, came).await);
    let first = fired(fire_one(&store, write_ahead(Some(came[0].id))).await);
    assert_eq!(first[0].state, JobState::Scheduled);
    let slots = |store: SharedStore| async move {
        store
            .schedule_slot_list(ScheduleSlotListParams {
                schedule: name("a"),
                after: None,
                limit: 10,
            })
            .await
            .expect("slots")
            .iter()
            .map(|s| s.slot)
            .collect::<Vec<_>>()
    };
    assert_eq!(slots(store.clone()).await, vec![past, slot]);

    let paused = store.schedule_pause(&name("a")).await.expect("pause");
    let answered: Vec<_> = paused
        .taken_back
        .iter()
        .map(|j| (j.id, j.state, j.slot))
        .collect();
    assert_eq!(
        answered,
        vec![(first[0].id, JobState::Cancelled, None)],
        "the pause answers the job it took back, as it is now"
    );
    let paused = paused.schedule;
    let taken = store.job_get(first[0].id).await.expect("job");
    assert_eq!(taken.state, JobState::Cancelled, "the job written ahead");
    assert_eq!(
        taken.slot, None,
        "no longer the slot's job (a retry is no second run of it)"
    );
    assert_eq!(
        store.job_get(came[0].id).await.expect("job").state,
        JobState::Available,
        "the slot that came keeps its job"
    );
    assert_eq!(
        slots(store.clone()).await,
        vec![past],
        "the slot is free again"
    );
    assert_eq!(paused.next_fire_at.map(|t| t.as_millisecond()), Some(slot));
    assert_eq!(paused.last_fire_at.map(|t| t.as_millisecond()), Some(past));
    assert_eq!(paused.last_job_id, Some(came[0].id));
    assert!(
        matches!(
            fire_one(&store, write_ahead(Some(came[0].id))).await,
            ScheduleFireOutcome::Moved
        ),
        "a paused schedule writes nothing ahead"
    );
    let mut by_hand = fire_params("a", Some(slot), vec![new_job("ticks", "tick")], Some(slot));
    by_hand.expected_last_job_id = Some(came[0].id);
    let manual = fired(fire_one(&store, by_hand).await);
    assert_eq!(manual.len(), 1, "a run by hand goes while paused");

    store.schedule_resume(&name("a")).await.expect("resume");
    let second = fired(fire_one(&store, write_ahead(Some(manual[0].id))).await);
    assert_ne!(second[0].id, first[0].id, "the freed slot is written again");
    let replaced = store
        .schedule_put(SchedulePutParams {
            spec: spec("a"),
            next_fire_at: Some(slot),
            mode: SchedulePut::Replace,
        })
        .await
        .expect("replace");
    let ids = |jobs: &[errand_core::Job]| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(ids(&replaced.taken_back), vec![second[0].id]);
    assert_eq!(
        store.job_get(second[0].id).await.expect("job").state,
        JobState::Cancelled,
        "a new definition takes back what the old one wrote ahead"
    );
    let replaced = store.schedule_get(&name("a")).await.expect("get");
    let third = fired(fire_one(&store, write_ahead(replaced.last_job_id)).await);
    let deleted = store.schedule_delete(&name("a")).await.expect("delete");
    assert_eq!(ids(&deleted), vec![third[0].id]);
    assert_eq!(
        store.job_get(third[0].id).await.expect("job").state,
        JobState::Cancelled,
        "deleting takes back what was written ahead"
    );
    assert_eq!(
        store.job_get(manual[0].id).await.expect("job").state,
        JobState::Available,
        "a run by hand is not a slot written ahead"
    );
}

/// A job written ahead that ended before the schedule changed (here cancelled by hand) is
/// that slot's run: a pause keeps it, keeps its slot taken and takes nothing back.
pub(crate) async fn a_job_written_ahead_that_ended_is_kept_by_a_pause(Ctx { store, .. }: Ctx) {
    let now = store.clock_now().await.expect("clock");
    let slot = now + 60_000;
    create(&store, "k", Some(slot)).await;
    let ahead = NewJob {
        run_at: errand_core::job::RunAt::At(slot),
        ..slot_job("k", slot)
    };
    let written = fired(
        fire_one(
            &store,
            fire_params("k", Some(slot), vec![ahead], Some(slot + 1_000)),
        )
        .await,
    );
    store
        .job_cancel(written[0].id)
        .await
        .expect("cancel by hand");
    let paused = store.schedule_pause(&name("k")).await.expect("pause");
    assert!(paused.taken_back.is_empty(), "{:?}", paused.taken_back);
    assert_eq!(
        paused.schedule.next_fire_at.map(|t| t.as_millisecond()),
        Some(slot + 1_000),
        "the slot that ended is not come again"
    );
    assert_eq!(paused.schedule.last_job_id, Some(written[0].id));
    let slots = store
        .schedule_slot_list(ScheduleSlotListParams {
            schedule: name("k"),
            after: None,
            limit: 10,
        })
        .await
        .expect("slots");
    assert_eq!(slots.iter().map(|s| s.slot).collect::<Vec<_>>(), vec![slot]);
    assert_eq!(
        store
            .job_get(written[0].id)
            .await
            .expect("job")
            .slot
            .map(|s| s.as_millisecond()),
        Some(slot),
        "still the slot's job"
    );
}

/// A decision made on a definition that was replaced since is `Moved`, even when the new
/// definition left the same next slot and last job: a pass that read the old one must not
/// write its job (ahead of the slot, where the replace would have taken it back).
pub(crate) async fn schedule_fire_on_a_replaced_definition_is_moved(Ctx { store, clock }: Ctx) {
    let now = store.clock_now().await.expect("clock");
    let slot = now + 60_000;
    let read = create(&store, "r", Some(slot)).await;
    clock.advance(Duration::from_secs(1)).await;
    store
        .schedule_put(SchedulePutParams {
            spec: spec("r"),
            next_fire_at: Some(slot),
            mode: SchedulePut::Replace,
        })
        .await
        .expect("replace");
    let decide = |updated_at: i64| ScheduleFireParams {
        expected_updated_at: Some(updated_at),
        ..fire_params(
            "r",
            Some(slot),
            vec![slot_job("r", slot)],
            Some(slot + 1_000),
        )
    };
    assert!(
        matches!(
            fire_one(&store, decide(read.updated_at.as_millisecond())).await,
            ScheduleFireOutcome::Moved
        ),
        "a decision on the old definition"
    );
    let fresh = store.schedule_get(&name("r")).await.expect("get");
    let jobs = fired(fire_one(&store, decide(fresh.updated_at.as_millisecond())).await);
    assert_eq!(jobs.len(), 1, "a decision on the definition as it is");
}
