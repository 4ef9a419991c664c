//! Import of exported jobs.

use errand_core::{AttemptOutcome, JobId, JobKind, JobState, Progress};
use serde_json::json;

use super::support::*;
use super::Ctx;

pub(super) fn exported(state: JobState, attempt_outcomes: &[AttemptOutcome]) -> crate::RestoredJob {
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
            // A hosted run's report travels with its attempt.
            report: (*outcome != AttemptOutcome::Running).then_some(errand_core::RunReport {
                exit_code: Some(i as i32),
                signal: None,
                duration_ms: 1500,
                cpu_ms: 120,
                max_rss_bytes: 8 << 20,
            }),
        })
        .collect();
    crate::RestoredJob {
        secrets: Default::default(),
        job: errand_core::Job {
            secrets: Default::default(),
            flow: Default::default(),
            reply_to: None,
            correlation_id: None,
            callback_url: None,
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
            ordering: Default::default(),
            parked: Default::default(),
        },
        attempts,
    }
}

/// Exported jobs arrive with their ids, states, history and timestamps; a running one
/// arrives ready to run again; importing twice inserts nothing the second time.
pub(crate) async fn restore_keeps_exported_jobs_and_is_repeatable(Ctx { store, .. }: Ctx) {
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
        .queue_upsert(crate::QueueUpsertParams {
            name: queue("moved"),
            paused: true,
        })
        .await
        .expect("upsert");
    store
        .queue_upsert(crate::QueueUpsertParams {
            name: queue("fresh"),
            paused: true,
        })
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

/// A restored job that a schedule fired claims its slot in the ledger, even when the export
/// carried no ledger line for it, so no backfill runs that slot again.
pub(crate) async fn restore_of_a_fired_job_claims_its_slot(Ctx { store, .. }: Ctx) {
    let mut fired = exported(JobState::Succeeded, &[AttemptOutcome::Succeeded]);
    let slot = jiff::Timestamp::from_millisecond(1_790_000_000_000).expect("timestamp");
    fired.job.schedule = Some("nightly".into());
    fired.job.slot = Some(slot);
    assert_eq!(
        store
            .job_restore_many(vec![fired.clone()])
            .await
            .expect("restore"),
        1
    );
    let ledger = store
        .schedule_slot_list(crate::ScheduleSlotListParams {
            schedule: errand_core::ScheduleName::parse("nightly").expect("name"),
            after: None,
            limit: 10,
        })
        .await
        .expect("ledger");
    assert_eq!(
        ledger,
        vec![crate::ScheduleSlotRecord {
            schedule: errand_core::ScheduleName::parse("nightly").expect("name"),
            slot: slot.as_millisecond(),
            job_id: fired.job.id,
        }]
    );
}
