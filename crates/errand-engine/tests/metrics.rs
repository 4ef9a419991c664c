//! The engine's metrics for what no HTTP test drives on cue: leases that lapse and schedule
//! slots that fire late, on a real SQLite store whose clock the test moves.
#![expect(
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use errand_core::schedule_spec::{CatchUpPolicy, JobTemplate, OverlapPolicy, ScheduleSpec};
use errand_core::time::Clock;
use errand_core::{JobKind, QueueName, ScheduleName};
use errand_engine::{maintenance, ClaimRequest, Engine, EngineConfig};
use errand_store::{SchedulePut, Settlement};
use errand_store_sqlite::{SqliteOptions, SqliteStore};

fn engine(dir: &std::path::Path, clock: &Clock) -> Arc<Engine> {
    let store = SqliteStore::open(&SqliteOptions {
        clock: clock.clone(),
        ..SqliteOptions::in_dir(dir)
    })
    .expect("open");
    Engine::new(Arc::new(store), EngineConfig::default())
}

/// The value of the sample written exactly as `series` (name and labels as encoded).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_counts_as_rescued_and_a_last_attempt_as_dead() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::adjustable();
    let engine = engine(dir.path(), &clock);
    let mut job = errand_store::conformance::new_job("q", "k");
    job.max_attempts = 1;
    engine.enqueue_many(vec![job]).await.expect("enqueue");
    let claimed = engine
        .claim(ClaimRequest {
            queue: QueueName::parse("q").expect("queue"),
            worker: "w".into(),
            max: 1,
            lease: Duration::from_secs(1),
            kinds: vec![],
            wait: Duration::ZERO,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);

    clock.advance(Duration::from_secs(2));
    assert_eq!(maintenance::rescue_once(&engine).await.expect("rescue"), 1);

    let text = engine.metrics_text().await.expect("metrics");
    let job = r#"{queue="q",kind="k"}"#;
    assert_eq!(
        sample(&text, &format!("errand_jobs_started_total{job}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("errand_jobs_rescued_total{job}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("errand_jobs_dead_total{job}")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"errand_job_settle_seconds_count{queue="q",outcome="dead"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"errand_store_operation_seconds_count{op="job_rescue_expired"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"errand_queue_jobs{queue="q",state="dead"}"#),
        Some(1.0)
    );
}

fn every_minute() -> ScheduleSpec {
    ScheduleSpec {
        name: ScheduleName::parse("tick").expect("name"),
        cron: None,
        every_ms: Some(60_000),
        timezone: "UTC".into(),
        job: JobTemplate {
            kind: JobKind::parse("tick").expect("kind"),
            queue: QueueName::parse("ticks").expect("queue"),
            payload: serde_json::json!({}),
            priority: 0,
            max_attempts: 1,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_slot_counts_its_lateness_and_a_due_schedule_its_overdue_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::adjustable();
    let engine = engine(dir.path(), &clock);
    let s = engine
        .schedule_put(every_minute(), SchedulePut::Create)
        .await
        .expect("create");
    let slot = s.next_fire_at.expect("a next slot");

    // Two and a half minutes later: the first slot is at least 90 s overdue.
    clock.advance(Duration::from_secs(150));
    let report = engine.schedule_pass().await.expect("pass");
    assert!(report.fired >= 1, "{report:?}");
    let text = engine.metrics_text().await.expect("metrics");
    assert_eq!(
        sample(&text, "errand_schedule_fired_total"),
        Some(report.fired as f64)
    );
    assert_eq!(
        sample(&text, "errand_schedule_lateness_seconds_count"),
        Some(report.fired as f64)
    );
    let late = sample(&text, "errand_schedule_lateness_seconds_sum").expect("sum");
    assert!(late > 0.0, "late slots are late: {late}");
    let overdue = sample(&text, "errand_schedule_overdue_seconds").expect("overdue");
    assert!(overdue >= 90.0, "{overdue}");
    let pass_at = sample(&text, "errand_scheduler_last_pass_timestamp_seconds").expect("pass");
    assert!(
        pass_at >= slot.as_second() as f64 + 90.0,
        "{pass_at} vs slot {slot}"
    );
    assert_eq!(
        sample(
            &text,
            r#"errand_jobs_enqueued_total{queue="ticks",kind="tick"}"#
        ),
        Some(report.fired as f64)
    );

    // Nothing is due on the next pass: nothing is overdue.
    engine.schedule_pass().await.expect("pass");
    let text = engine.metrics_text().await.expect("metrics");
    assert_eq!(sample(&text, "errand_schedule_overdue_seconds"), Some(0.0));
}

/// Claims the one ready job of queue `q`.
async fn claim_one(engine: &Engine) -> errand_store::ClaimedJob {
    let mut claimed = engine
        .claim(ClaimRequest {
            queue: QueueName::parse("q").expect("queue"),
            worker: "w".into(),
            max: 1,
            lease: Duration::from_secs(60),
            kinds: vec![],
            wait: Duration::ZERO,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    claimed.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_repeated_after_a_lost_answer_counts_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::adjustable();
    let engine = engine(dir.path(), &clock);
    let job = || errand_store::conformance::new_job("q", "k");
    engine
        .enqueue_many(vec![job(), job()])
        .await
        .expect("enqueue");

    // One job completes, and its worker, not hearing the answer, completes it again.
    let c = claim_one(&engine).await;
    let complete = Settlement::Complete {
        id: c.job.id,
        lease_token: c.lease_token,
        result: None,
        report: None,
        session_state: None,
    };
    engine.settle(complete.clone()).await.expect("complete");
    engine
        .settle(complete)
        .await
        .expect("the repeat answers Ok");

    // The other fails (to be retried), and its failure is repeated too.
    let c = claim_one(&engine).await;
    let fail = Settlement::Fail {
        id: c.job.id,
        lease_token: c.lease_token,
        error: "boom".into(),
        retry_in: Some(Duration::from_secs(3600)),
        dead: false,
        report: None,
    };
    engine.settle(fail.clone()).await.expect("fail");
    engine.settle(fail).await.expect("the repeat answers Ok");

    let text = engine.metrics_text().await.expect("metrics");
    let job = r#"{queue="q",kind="k"}"#;
    assert_eq!(
        sample(&text, &format!("errand_jobs_succeeded_total{job}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("errand_jobs_failed_total{job}")),
        Some(1.0)
    );
    for outcome in ["succeeded", "failed"] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"errand_job_run_seconds_count{{queue="q",outcome="{outcome}"}}"#)
            ),
            Some(1.0),
            "{outcome}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ends_a_day_after_its_enqueue_lands_in_a_bucket_of_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::adjustable();
    let engine = engine(dir.path(), &clock);
    engine
        .enqueue_many(vec![errand_store::conformance::new_job("q", "k")])
        .await
        .expect("enqueue");
    // Retries with the default backoff span about a day: this one succeeds after 20 h.
    clock.advance(Duration::from_secs(20 * 3600));
    let c = claim_one(&engine).await;
    engine
        .settle(Settlement::Complete {
            id: c.job.id,
            lease_token: c.lease_token,
            result: None,
            report: None,
            session_state: None,
        })
        .await
        .expect("complete");

    let text = engine.metrics_text().await.expect("metrics");
    let bucket = |le: &str| {
        sample(
            &text,
            &format!(
                r#"errand_job_settle_seconds_bucket{{queue="q",outcome="succeeded",le="{le}"}}"#
            ),
        )
    };
    assert_eq!(bucket("43200"), Some(0.0), "{text}");
    assert_eq!(bucket("86400"), Some(1.0), "{text}");
}
