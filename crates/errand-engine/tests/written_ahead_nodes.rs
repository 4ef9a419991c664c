//! Two engines ("nodes") on one PostgreSQL schema: jobs one node wrote ahead of their slot
//! reach a claim waiting on the other node at the slot, told through the store, while the
//! writing node's own claim takes its share. Neither node runs a promoter, and both re-check
//! their claims an hour apart, so only that announcement can wake the other node's claim.
#![expect(
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_core::schedule_spec::{CatchUpPolicy, JobTemplate, OverlapPolicy, ScheduleSpec};
use errand_core::{JobKind, JobState, QueueName, ScheduleName};
use errand_engine::{maintenance, ClaimRequest, Engine, EngineConfig};
use errand_store::{SchedulePut, Store};
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Every two seconds, runs may overlap: the schedule writes its jobs ahead.
fn every_two_seconds(name: &str, queue: &QueueName) -> ScheduleSpec {
    ScheduleSpec {
        name: ScheduleName::parse(name).expect("name"),
        cron: None,
        every_ms: Some(2_000),
        timezone: "UTC".into(),
        job: JobTemplate {
            kind: JobKind::parse("tick").expect("kind"),
            queue: queue.clone(),
            payload: serde_json::json!({}),
            priority: 0,
            max_attempts: 1,
            timeout_ms: None,
            tags: vec![],
        },
        overlap: OverlapPolicy::Allow,
        catch_up: CatchUpPolicy::Skip,
        catch_up_window_ms: 3_600_000,
        jitter_ms: 0,
        singleton: false,
    }
}

/// Polls `check` until it holds, failing the test after 20 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_written_ahead_reach_a_claim_on_another_node_at_their_slot() {
    let Some(schema) = PgSchema::create("jobs written ahead on two nodes").await else {
        return;
    };
    let connect = || async {
        Arc::new(
            PgStore::connect(&PgOptions {
                schema: schema.name.clone(),
                pool_size: 4,
                ..PgOptions::new(&schema.url)
            })
            .await
            .expect("connect to PostgreSQL"),
        )
    };
    let config = EngineConfig {
        schedule_lead: Duration::from_secs(3),
        claim_recheck: Duration::from_secs(3600),
        promote_interval: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    let store_a = connect().await;
    let a = Engine::new(store_a.clone(), config.clone());
    let b = Engine::new(connect().await, config);
    let token = CancellationToken::new();
    let mut services = JoinSet::new();
    maintenance::spawn_wakeup_listener(b.clone(), token.clone(), &mut services);

    let queue = QueueName::parse("ahead").expect("queue");
    // Slots fall on even seconds; start early in one, so that the next slot is at least a
    // second away and its jobs are written ahead, not at their slot.
    let deadline = Instant::now() + Duration::from_secs(20);
    let clock = loop {
        let now = store_a.clock_now().await.expect("clock");
        if now.rem_euclid(2_000) < 1_000 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "an early moment in a two-second slot"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for name in ["one", "two"] {
        a.schedule_put(every_two_seconds(name, &queue), SchedulePut::Create)
            .await
            .expect("create");
    }
    // A claim waits on each node; the slot's two jobs are one for each.
    let claim = |engine: Arc<Engine>, worker: &'static str| {
        let queue = queue.clone();
        tokio::spawn(async move {
            engine
                .claim(ClaimRequest {
                    queue,
                    worker: worker.into(),
                    max: 1,
                    lease: Duration::from_secs(60),
                    kinds: vec![],
                    wait: Duration::from_secs(60),
                })
                .await
        })
    };
    let on_a = claim(a.clone(), "a");
    let on_b = claim(b.clone(), "b");
    until("both claims wait", || {
        a.waiting_claims(&queue) == 1 && b.waiting_claims(&queue) == 1
    })
    .await;
    let report = a.schedule_pass().await.expect("pass");
    assert!(report.fired >= 2, "{report:?}");
    for (node, handle) in [("a", on_a), ("b", on_b)] {
        let claimed = tokio::time::timeout(Duration::from_secs(20), handle)
            .await
            .unwrap_or_else(|_| panic!("node {node}'s claim woken at the slot"))
            .expect("join")
            .expect("claim");
        let job = &claimed.first().expect("a job").job;
        assert_eq!(job.state, JobState::Running);
        let slot = job.slot.expect("a slot's job").as_millisecond();
        assert!(slot > clock, "written ahead of its slot: {slot} vs {clock}");
    }
    token.cancel();
    while services.join_next().await.is_some() {}
}
