//! The scheduler pass over a real (embedded) store: what it writes, and when it writes
//! nothing.
#![expect(
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use errand_core::job::{RunAt, ScheduleSlot};
use errand_core::schedule_spec::{CatchUpPolicy, JobTemplate, OverlapPolicy, ScheduleSpec};
use errand_core::{JobId, JobKind, NewJob, QueueName, RetryPolicy, ScheduleName};
use errand_engine::{Engine, EngineConfig};
use errand_store::{
    JobClaimParams, JobSettleManyParams, ScheduleFireOutcome, ScheduleFireParams, SchedulePut,
    Settlement, SharedStore,
};
use errand_store_sqlite::{SqliteOptions, SqliteStore};

fn hourly_buffer_one() -> ScheduleSpec {
    ScheduleSpec {
        name: ScheduleName::parse("report").expect("name"),
        cron: None,
        every_ms: Some(3_600_000),
        timezone: "UTC".into(),
        job: JobTemplate {
            kind: JobKind::parse("report").expect("kind"),
            queue: QueueName::parse("reports").expect("queue"),
            payload: serde_json::json!({}),
            priority: 0,
            max_attempts: 1,
            timeout_ms: None,
            tags: vec![],
        },
        overlap: OverlapPolicy::BufferOne,
        catch_up: CatchUpPolicy::Skip,
        catch_up_window_ms: 3_600_000,
        jitter_ms: 0,
        singleton: false,
    }
}

/// While a `buffer_one` schedule's run goes on and its only work is the buffered slot, a
/// pass writes nothing (no transaction, no fsync); once the run ends, the slot fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_slot_waiting_for_a_running_job_costs_no_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: SharedStore = Arc::new(
        SqliteStore::open(&SqliteOptions {
            readers: 2,
            ..SqliteOptions::in_dir(dir.path())
        })
        .expect("open"),
    );
    let engine = Engine::new(store.clone(), EngineConfig::default());
    let s = engine
        .schedule_put(hourly_buffer_one(), SchedulePut::Create)
        .await
        .expect("create");
    // The previous run, enqueued for a past slot, with the slot after it held back.
    let (earlier, held) = (1_000_000, 4_600_000);
    let run = NewJob {
        secrets: Default::default(),
        flow: Default::default(),
        notify: Default::default(),
        id: JobId::new(),
        kind: JobKind::parse("report").expect("kind"),
        queue: QueueName::parse("reports").expect("queue"),
        payload: serde_json::json!({}),
        priority: 0,
        run_at: RunAt::Now,
        max_attempts: 1,
        timeout: None,
        tags: vec![],
        idempotency_key: None,
        slot: Some(ScheduleSlot {
            schedule: "report".into(),
            at: earlier,
        }),
        ordering: Default::default(),
        inherit: Default::default(),
    };
    let outcome = store
        .schedule_fire_many(vec![ScheduleFireParams {
            name: s.spec.name.clone(),
            expected_next_fire_at: s.next_fire_at.map(|t| t.as_millisecond()),
            expected_last_job_id: None,
            expected_updated_at: None,
            jobs: vec![run],
            next_fire_at: s.next_fire_at.map(|t| t.as_millisecond()),
            buffered_slot: Some(held),
            cancel: None,
            idempotency_window: Duration::from_secs(60),
        }])
        .await
        .expect("fire");
    assert!(matches!(outcome[0], ScheduleFireOutcome::Fired { .. }));
    let claimed = store
        .job_claim(JobClaimParams {
            queue: QueueName::parse("reports").expect("queue"),
            worker: "w".into(),
            max: 1,
            lease: Duration::from_secs(600),
            kinds: vec![],
        })
        .await
        .expect("claim")
        .remove(0);
    let before = store.schedule_get(&s.spec.name).await.expect("get");
    for _ in 0..5 {
        let report = engine.schedule_pass().await.expect("pass");
        assert_eq!(
            (report.due, report.written, report.fired),
            (0, 0, 0),
            "waiting writes nothing"
        );
    }
    let after = store.schedule_get(&s.spec.name).await.expect("get");
    assert_eq!(
        after.updated_at, before.updated_at,
        "the row was not touched"
    );
    store
        .job_settle_many(JobSettleManyParams {
            settlements: vec![Settlement::Complete {
                id: claimed.job.id,
                lease_token: claimed.lease_token,
                result: None,
                report: None,
                session_state: Default::default(),
            }],
            retry_policy: RetryPolicy::default(),
        })
        .await
        .expect("settle");
    let report = engine.schedule_pass().await.expect("pass");
    assert_eq!(
        (report.written, report.fired),
        (1, 1),
        "the run ended: the buffered slot fires"
    );
    let fired = store.schedule_get(&s.spec.name).await.expect("get");
    assert_eq!(fired.last_fire_at.map(|t| t.as_millisecond()), Some(held));
    assert_eq!(fired.buffered_slot, None);
}

/// A SQLite store in `dir` and an engine on it (running no services) with `config`.
fn engine_writing_ahead(dir: &std::path::Path, config: EngineConfig) -> (SharedStore, Arc<Engine>) {
    let store: SharedStore =
        Arc::new(SqliteStore::open(&SqliteOptions::in_dir(dir)).expect("open"));
    (store.clone(), Engine::new(store, config))
}

/// A schedule firing every `every_ms` whose runs may overlap: it writes its jobs ahead.
fn every_allowing_overlap(every_ms: u64) -> ScheduleSpec {
    ScheduleSpec {
        every_ms: Some(every_ms),
        overlap: OverlapPolicy::Allow,
        ..hourly_buffer_one()
    }
}

/// An `overlap: allow` schedule writes the jobs of the slots within its lead before they
/// come, each a scheduled job that starts at its slot; a claim waiting on the queue is
/// handed the first once its slot comes, by a wake-up at the slot: neither the promoter nor
/// a claim's re-check runs within the test (this engine runs no services, and re-checks an
/// hour apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_written_ahead_is_handed_to_a_waiting_claim_at_its_slot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, engine) = engine_writing_ahead(
        dir.path(),
        EngineConfig {
            schedule_lead: Duration::from_secs(3),
            claim_recheck: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
    );
    let spec = every_allowing_overlap(1_000);
    let queue = spec.job.queue.clone();
    engine
        .schedule_put(spec, SchedulePut::Create)
        .await
        .expect("create");
    let written_at = store.clock_now().await.expect("clock");
    let report = engine.schedule_pass().await.expect("pass");
    assert!(report.fired >= 2, "the slots of the next 3 s: {report:?}");
    let ahead = store.queue_get(&queue).await.expect("queue").counts;
    assert!(ahead.scheduled >= 2, "jobs wait for their slots: {ahead:?}");
    assert_eq!(ahead.scheduled + ahead.available, report.fired as u64);
    let claim = |max: u32, wait: Duration| errand_engine::ClaimRequest {
        queue: queue.clone(),
        worker: "w".into(),
        max,
        lease: Duration::from_secs(60),
        kinds: vec![],
        wait,
    };
    if ahead.available > 0 {
        // A second began between the definition and the pass: that slot fired on time.
        let on_time = engine
            .claim(claim(
                u32::try_from(ahead.available).expect("few"),
                Duration::ZERO,
            ))
            .await
            .expect("claim");
        assert_eq!(on_time.len() as u64, ahead.available);
    }
    // The claim would wait a minute; the first slot is at most a second away.
    let claimed = tokio::time::timeout(
        Duration::from_secs(20),
        engine.claim(claim(1, Duration::from_secs(60))),
    )
    .await
    .expect("woken at the slot, not at the end of the claim's wait")
    .expect("claim");
    let now = store.clock_now().await.expect("clock");
    let job = &claimed.first().expect("a job, handed over at its slot").job;
    let slot = job.slot.expect("a slot job").as_millisecond();
    assert!(slot > written_at, "written ahead of its slot");
    assert!(slot <= now, "not before its slot: {slot} > {now}");
    assert!(
        slot <= written_at + 1_000,
        "the first slot after the pass: {slot}, pass at {written_at}"
    );
}

/// Pausing a schedule cancels the jobs it wrote ahead, and the engine publishes those
/// cancels as it does any other: counted in the metrics, and a waiter on one woken with
/// its end rather than at the end of its wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_a_pause_takes_back_are_published_as_cancelled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_store, engine) = engine_writing_ahead(
        dir.path(),
        EngineConfig {
            schedule_lead: Duration::from_secs(30),
            ..EngineConfig::default()
        },
    );
    let spec = every_allowing_overlap(10_000);
    let name = spec.name.clone();
    engine
        .schedule_put(spec, SchedulePut::Create)
        .await
        .expect("create");
    let report = engine.schedule_pass().await.expect("pass");
    assert!(report.fired >= 2, "the slots of the next 30 s: {report:?}");
    let queue = QueueName::parse("reports").expect("queue");
    let in_state = |state: errand_core::JobState| errand_store::JobListParams {
        queue: Some(queue.clone()),
        state: Some(state),
        kind: None,
        tag: None,
        before: None,
        limit: 100,
    };
    let ahead = engine
        .list(in_state(errand_core::JobState::Scheduled))
        .await
        .expect("list");
    assert!(ahead.len() >= 2, "{ahead:?}");
    // The furthest slot, at least 10 s away: still to come when the pause takes it back.
    let furthest = ahead.iter().max_by_key(|j| j.slot).expect("a job").id;
    let waiter = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.job(furthest, Duration::from_secs(60)).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while engine.jobs_waited_on() == 0 {
        assert!(std::time::Instant::now() < deadline, "the waiter registers");
        tokio::task::yield_now().await;
    }
    engine.schedule_pause(&name).await.expect("pause");
    let ended = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter woken by the pause, not at the end of its wait")
        .expect("join")
        .expect("wait");
    assert_eq!(ended.state, errand_core::JobState::Cancelled);
    // A slot that came between the pass and the pause keeps its job: count what was taken.
    let taken = engine
        .list(in_state(errand_core::JobState::Cancelled))
        .await
        .expect("list");
    assert!(!taken.is_empty());
    let text = engine.metrics_text().await.expect("metrics");
    let cancelled = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"errand_jobs_cancelled_total{queue="reports",kind="report"} "#)
        })
        .map(|v| v.parse::<f64>().expect("a number"));
    assert_eq!(cancelled, Some(taken.len() as f64), "{text}");
}
