//! The worker against a fake host: each test stages one race or one failure of the host
//! deterministically (most on tokio's paused clock, which jumps ahead when all is idle).

use std::sync::atomic::{AtomicUsize, Ordering};

use errand_core::{JobId, LeaseToken, NewLogLine, Progress};
use errand_runner::host::{RunSettlement, RunVerdict};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::*;
use crate::fake_host::{job, lock, Beat, FakeHost};
use crate::{JobContext, JobError, ShutdownReport, WorkerError, SHUTDOWN_MARGIN};

/// A host that is always away.
struct Away;

#[async_trait::async_trait]
impl JobHost for Away {
    async fn claim(
        &self,
        _: &QueueName,
        _: &[JobKind],
        _: u32,
        _: Duration,
    ) -> Result<Vec<HostedJob>, HostError> {
        Err(HostError::Unavailable("away".into()))
    }
    async fn heartbeat(
        &self,
        _: JobId,
        _: LeaseToken,
        _: Option<Progress>,
        _: Option<Value>,
    ) -> Result<(), HostError> {
        Err(HostError::Unavailable("away".into()))
    }
    async fn settle(&self, _: Vec<RunSettlement>) -> Result<Vec<Result<(), HostError>>, HostError> {
        Err(HostError::Unavailable("away".into()))
    }
    async fn append_logs(
        &self,
        _: JobId,
        _: u32,
        _: LeaseToken,
        _: Vec<NewLogLine>,
    ) -> Result<(), HostError> {
        Ok(())
    }
    async fn release(&self, _: JobId, _: LeaseToken) -> Result<(), HostError> {
        Ok(())
    }
    async fn lease_acquire(&self, _: &str, _: &str, _: Duration) -> Result<bool, HostError> {
        Ok(false)
    }
    async fn lease_release(&self, _: &str, _: &str) -> Result<(), HostError> {
        Ok(())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Ping {}

impl JobType for Ping {
    const KIND: &'static str = "ping";
}

async fn ping(_: JobContext, _: Ping) -> Result<(), JobError> {
    Ok(())
}

/// What the step handlers of a test do, by payload.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Step {
    #[serde(default)]
    panic_early: bool,
    #[serde(default)]
    panic_late: bool,
    /// Fail with this message and delay (ms; `u64::MAX` for `Duration::MAX`).
    #[serde(default)]
    fail: Option<(String, u64)>,
    /// Return this result.
    #[serde(default)]
    result: Option<Value>,
    /// Never return on its own.
    #[serde(default)]
    hang: bool,
    /// Wait for the lease to be lost (at most 20 s), then return.
    #[serde(default)]
    await_lease_lost: bool,
    /// Send progress and a checkpoint first.
    #[serde(default)]
    report: bool,
}

impl JobType for Step {
    const KIND: &'static str = "step";
}

/// What the step handler saw.
#[derive(Default)]
struct Seen {
    started: AtomicUsize,
    told_lease_lost: AtomicUsize,
    returned: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl Seen {
    fn count(&self, counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Waits (at most 60 s of the test's clock) until `cond` holds.
    async fn until(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if cond(self) {
                    return;
                }
                changed.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .is_err()
        {
            panic!("never happened: {what}");
        }
    }
}

/// The step handler: a closure, so that a panic can come before its first `.await`.
fn step(
    seen: Arc<Seen>,
) -> impl Fn(
    JobContext,
    Step,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send>>
       + Send
       + Sync
       + 'static {
    move |ctx: JobContext, s: Step| {
        seen.count(&seen.started);
        if s.panic_early {
            panic!("boom before the first await");
        }
        let seen = seen.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            if s.panic_late {
                panic!("boom after an await");
            }
            if s.report {
                ctx.progress(50.0, "half way").await?;
                ctx.save_checkpoint(&json!({"done": 5})).await?;
            }
            if s.hang {
                std::future::pending::<()>().await;
            }
            if s.await_lease_lost
                && tokio::time::timeout(Duration::from_secs(20), ctx.lease_lost().cancelled())
                    .await
                    .is_ok()
            {
                seen.count(&seen.told_lease_lost);
            }
            seen.count(&seen.returned);
            if let Some((message, ms)) = s.fail {
                let delay = if ms == u64::MAX {
                    Duration::MAX
                } else {
                    Duration::from_millis(ms)
                };
                return Err(JobError::retry_in(message, delay));
            }
            Ok(s.result.unwrap_or(Value::Null))
        })
    }
}

fn step_job(s: Step) -> HostedJob {
    job("step", serde_json::to_value(s).expect("payload"))
}

fn fake() -> Arc<FakeHost> {
    let host = FakeHost::default();
    *lock(&host.lease) = Some(Duration::from_secs(30));
    Arc::new(host)
}

fn worker(host: &Arc<FakeHost>, seen: &Arc<Seen>) -> Worker {
    Worker::new(host.clone())
        .poll_wait(Duration::from_millis(100))
        .reconnect_backoff(Duration::from_millis(1), Duration::from_millis(10))
        .register::<Step, _>(step(seen.clone()))
}

/// A worker running in a task until its token is cancelled.
struct Started {
    stop: CancellationToken,
    run: JoinHandle<Result<ShutdownReport, WorkerError>>,
}

impl Started {
    fn new(worker: Worker) -> Self {
        let stop = CancellationToken::new();
        let run = tokio::spawn(worker.run_until(stop.clone()));
        Self { stop, run }
    }

    async fn stop(self) -> ShutdownReport {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(600), self.run)
            .await
            .expect("the worker stops")
            .expect("the worker task")
            .expect("the worker ran")
    }
}

fn failure_of(s: &RunSettlement) -> (&str, Option<Duration>, bool) {
    match &s.verdict {
        RunVerdict::Fail {
            error,
            retry_in,
            dead,
        } => (error.as_str(), *retry_in, *dead),
        RunVerdict::Complete { .. } => panic!("{} completed", s.id),
    }
}

/// `run` of a worker that never gets a shutdown signal, bounded so a hang fails.
async fn run_unsignalled(worker: Worker) -> Result<ShutdownReport, WorkerError> {
    tokio::time::timeout(Duration::from_secs(5), worker.run(std::future::pending()))
        .await
        .expect("run returned without a shutdown signal")
}

#[tokio::test]
async fn a_worker_that_cannot_start_says_why_without_waiting_for_shutdown() {
    let none = run_unsignalled(Worker::new(Arc::new(Away))).await;
    assert!(matches!(none, Err(WorkerError::NoHandlers)), "{none:?}");
    let twice = run_unsignalled(
        Worker::new(Arc::new(Away))
            .register::<Ping, _>(ping)
            .register::<Ping, _>(ping),
    )
    .await;
    assert!(matches!(twice, Err(WorkerError::DuplicateKind(k)) if k == "ping"));
    let bad = run_unsignalled(
        Worker::new(Arc::new(Away))
            .queue("no spaces allowed")
            .register::<Ping, _>(ping),
    )
    .await;
    assert!(matches!(bad, Err(WorkerError::BadName(_))), "{bad:?}");
}

#[tokio::test]
async fn a_host_that_is_away_never_ends_the_loop_and_shutdown_still_stops_it() {
    let stop = CancellationToken::new();
    let worker = Worker::new(Arc::new(Away))
        .reconnect_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .register::<Ping, _>(ping);
    let running = tokio::spawn(worker.run_until(stop.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!running.is_finished(), "still trying");
    stop.cancel();
    let report = running.await.expect("task").expect("report");
    assert_eq!(report, ShutdownReport::default());
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_panics_even_before_its_first_await_fails_the_attempt_retryably() {
    let host = fake();
    let seen = Arc::new(Seen::default());
    let early = step_job(Step {
        panic_early: true,
        ..Step::default()
    });
    let late = step_job(Step {
        panic_late: true,
        ..Step::default()
    });
    let (early_id, late_id) = (early.job.id, late.job.id);
    host.push([early, late]);
    let w = Started::new(worker(&host, &seen));
    host.until("both panics settled", |h| {
        h.settled_for(early_id).len() == 1 && h.settled_for(late_id).len() == 1
    })
    .await;
    for id in [early_id, late_id] {
        let settled = host.settled_for(id);
        let (error, retry_in, dead) = failure_of(&settled[0]);
        assert!(error.starts_with("the handler panicked: boom"), "{error}");
        assert_eq!((retry_in, dead), (None, false), "retried with the backoff");
    }
    // The worker goes on.
    let next = step_job(Step::default());
    let next_id = next.job.id;
    host.push([next]);
    host.until("the next job settled", |h| {
        h.settled_for(next_id).len() == 1
    })
    .await;
    assert_eq!(w.stop().await, ShutdownReport::default());
}

#[tokio::test(start_paused = true)]
async fn progress_and_checkpoints_reach_the_host() {
    let host = fake();
    let seen = Arc::new(Seen::default());
    let j = step_job(Step {
        report: true,
        ..Step::default()
    });
    let id = j.job.id;
    host.push([j]);
    let w = Started::new(worker(&host, &seen));
    host.until("settled", |h| h.settled_for(id).len() == 1)
        .await;
    let beats = lock(&host.beats).clone();
    let progress = beats
        .iter()
        .find_map(|b| b.progress.clone().filter(|_| b.id == id))
        .expect("a heartbeat carried progress");
    assert_eq!(progress.percent, Some(50.0));
    assert_eq!(progress.message.as_deref(), Some("half way"));
    let checkpoint = beats
        .iter()
        .find_map(|b| b.checkpoint.clone().filter(|_| b.id == id))
        .expect("a heartbeat carried the checkpoint");
    assert_eq!(checkpoint, json!({"done": 5}));
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nul_characters_and_endless_retry_delays_cost_no_other_settlement() {
    let host = fake();
    let seen = Arc::new(Seen::default());
    let nul_error = step_job(Step {
        fail: Some(("bad\0byte".into(), 10)),
        ..Step::default()
    });
    let endless = step_job(Step {
        fail: Some(("later".into(), u64::MAX)),
        ..Step::default()
    });
    let nul_result = step_job(Step {
        result: Some(json!({"k\u{0}": ["v\u{0}"]})),
        ..Step::default()
    });
    let fine = step_job(Step::default());
    let ids = [
        nul_error.job.id,
        endless.job.id,
        nul_result.job.id,
        fine.job.id,
    ];
    host.push([nul_error, endless, nul_result, fine]);
    // One batch for all four: the window is long, and the clock only moves when all idle.
    let w = Started::new(worker(&host, &seen).settle_window(Duration::from_secs(1)));
    host.until("all four settled", |h| {
        ids.iter().all(|id| h.settled_for(*id).len() == 1)
    })
    .await;
    assert_eq!(lock(&host.settle_calls).len(), 1, "one call, taken whole");
    let nul = host.settled_for(ids[0]);
    let (error, retry_in, _) = failure_of(&nul[0]);
    assert_eq!(
        (error, retry_in),
        ("bad\u{FFFD}byte", Some(Duration::from_millis(10)))
    );
    let endless = host.settled_for(ids[1]);
    let (error, retry_in, _) = failure_of(&endless[0]);
    assert_eq!(error, "later");
    assert_eq!(retry_in, Some(crate::storable::MAX_RETRY_IN));
    match &host.settled_for(ids[2])[0].verdict {
        RunVerdict::Complete { result } => {
            assert_eq!(result.as_ref(), Some(&json!({"k\u{FFFD}": ["v\u{FFFD}"]})))
        }
        other => panic!("{other:?}"),
    }
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_refused_whole_is_sent_again_one_by_one_and_only_the_bad_settlement_is_lost() {
    let host = fake();
    let seen = Arc::new(Seen::default());
    let jobs: Vec<HostedJob> = (0..3).map(|_| step_job(Step::default())).collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.job.id).collect();
    lock(&host.refuse_batches_with).insert(ids[1]);
    host.push(jobs);
    let w = Started::new(worker(&host, &seen).settle_window(Duration::from_secs(1)));
    host.until("the good two settled", |h| {
        h.settled_for(ids[0]).len() == 1 && h.settled_for(ids[2]).len() == 1
    })
    .await;
    host.until("the bad one sent alone", |h| h.sent_for(ids[1]) == 2)
        .await;
    w.stop().await;
    let calls = lock(&host.settle_calls).clone();
    assert_eq!(calls[0].len(), 3, "first together");
    assert!(calls[1..].iter().all(|c| c.len() == 1), "then one by one");
    assert!(host.settled_for(ids[1]).is_empty());
    assert_eq!(
        host.sent_for(ids[1]),
        2,
        "the refused one is not sent again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_settlement_the_host_cannot_take_now_is_sent_again() {
    let host = fake();
    let seen = Arc::new(Seen::default());
    let busy = step_job(Step::default());
    let other = step_job(Step::default());
    let (busy_id, other_id) = (busy.job.id, other.job.id);
    lock(&host.entry_busy_once).insert(busy_id);
    host.push([busy, other]);
    let w = Started::new(worker(&host, &seen).settle_window(Duration::from_secs(1)));
    host.until("both settled", |h| {
        h.settled_for(busy_id).len() == 1 && h.settled_for(other_id).len() == 1
    })
    .await;
    assert_eq!(host.sent_for(busy_id), 2);
    assert_eq!(host.sent_for(other_id), 1, "only the busy one again");
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_settlement_the_host_leaves_unanswered_is_sent_again() {
    let host = fake();
    let seen = Arc::new(Seen::default());
    let job = step_job(Step::default());
    let id = job.job.id;
    lock(&host.answer_short_once).insert(id);
    host.push([job]);
    let w = Started::new(worker(&host, &seen));
    host.until("sent twice", |h| h.sent_for(id) == 2).await;
    assert_eq!(
        host.settled_for(id).len(),
        2,
        "taken both times (idempotent)"
    );
    w.stop().await;
}

/// Counts, by level, the log events whose message is `message`.
#[derive(Clone)]
struct LogCount {
    message: &'static str,
    counts: Arc<std::sync::Mutex<std::collections::HashMap<tracing::Level, usize>>>,
}

impl LogCount {
    fn new(message: &'static str) -> Self {
        Self {
            message,
            counts: Arc::default(),
        }
    }

    fn at(&self, level: tracing::Level) -> usize {
        lock(&self.counts).get(&level).copied().unwrap_or(0)
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogCount {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0 = value.to_string();
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0 == self.message {
            *lock(&self.counts)
                .entry(*event.metadata().level())
                .or_default() += 1;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_host_away_while_settling_is_said_once_per_batch_at_info() {
    use tracing_subscriber::layer::SubscriberExt;

    let logs = LogCount::new(crate::settler::HOST_AWAY);
    let _logging =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.clone()));
    let host = fake();
    // The host takes no settle call five times over, then takes the batch.
    host.settles_away.store(5, Ordering::SeqCst);
    let seen = Arc::new(Seen::default());
    let j = step_job(Step::default());
    let id = j.job.id;
    host.push([j]);
    let w = Started::new(worker(&host, &seen));
    host.until("settled at last", |h| h.settled_for(id).len() == 1)
        .await;
    assert_eq!(logs.at(tracing::Level::INFO), 1, "said once for the batch");
    assert_eq!(logs.at(tracing::Level::DEBUG), 4, "its further tries");
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_the_lease_until_the_settlement_is_confirmed() {
    let host = fake();
    *lock(&host.lease) = Some(Duration::from_millis(300));
    // The host takes no settlement for longer than a lease (backoff 50 ms doubling, ×5).
    host.settles_away.store(5, Ordering::SeqCst);
    let seen = Arc::new(Seen::default());
    let j = step_job(Step::default());
    let id = j.job.id;
    host.push([j]);
    let w = Started::new(worker(&host, &seen));
    host.until("settled at last", |h| h.settled_for(id).len() == 1)
        .await;
    assert!(lock(&host.settle_calls).len() >= 6);
    // The handler returned at once: every heartbeat came after it, while settling.
    let beats = lock(&host.beats).len();
    assert!(beats >= 2, "{beats} heartbeats");
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_settlement_is_not_sent_again_once_its_lease_has_lapsed() {
    let host = fake();
    *lock(&host.lease) = Some(Duration::from_secs(1));
    *lock(&host.beat) = Beat::Away;
    host.settles_away.store(usize::MAX, Ordering::SeqCst);
    let seen = Arc::new(Seen::default());
    let j = step_job(Step::default());
    let id = j.job.id;
    host.push([j]);
    let claimed = tokio::time::Instant::now();
    let w = Started::new(worker(&host, &seen));
    host.until("sent once", |h| h.sent_for(id) >= 1).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let last = *lock(&host.settle_times).last().expect("a settle call");
    assert!(
        last - claimed <= Duration::from_secs(2),
        "sent again {:?} after the claim, past its 1 s lease",
        last - claimed
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lease_lapses_when_no_heartbeat_gets_through_for_a_whole_lease() {
    for beat in [Beat::Hang, Beat::Away] {
        let host = fake();
        *lock(&host.lease) = Some(Duration::from_millis(300));
        *lock(&host.beat) = beat;
        let seen = Arc::new(Seen::default());
        let j = step_job(Step {
            await_lease_lost: true,
            ..Step::default()
        });
        let id = j.job.id;
        host.push([j]);
        let claimed = tokio::time::Instant::now();
        let w = Started::new(worker(&host, &seen));
        seen.until("the handler returned", |s| {
            s.returned.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(seen.told_lease_lost.load(Ordering::SeqCst), 1, "{beat:?}");
        let told_after = claimed.elapsed();
        assert!(
            told_after >= Duration::from_millis(300) && told_after < Duration::from_millis(500),
            "{beat:?}: told after {told_after:?}"
        );
        w.stop().await;
        assert_eq!(
            host.sent_for(id),
            0,
            "{beat:?}: a lost lease is not settled"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_lost_answer_tells_the_handler_and_nothing_is_settled() {
    let host = fake();
    *lock(&host.lease) = Some(Duration::from_millis(300));
    *lock(&host.beat) = Beat::LeaseLost;
    let seen = Arc::new(Seen::default());
    let j = step_job(Step {
        await_lease_lost: true,
        ..Step::default()
    });
    let id = j.job.id;
    host.push([j]);
    let w = Started::new(worker(&host, &seen));
    seen.until("the handler returned", |s| {
        s.returned.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(seen.told_lease_lost.load(Ordering::SeqCst), 1);
    w.stop().await;
    assert_eq!(host.sent_for(id), 0);
}

#[tokio::test(start_paused = true)]
async fn a_claim_that_answers_as_shutdown_begins_has_its_jobs_given_back_not_started() {
    // The claim answers as shutdown begins, or a moment after (its answer on its way).
    for after in [Duration::ZERO, Duration::from_millis(100)] {
        let host = fake();
        let seen = Arc::new(Seen::default());
        let stop = CancellationToken::new();
        *lock(&host.hold_claims_until) = Some(stop.clone());
        *lock(&host.claims_answer_after_hold) = after;
        let j = step_job(Step::default());
        let id = j.job.id;
        host.push([j]);
        let run = tokio::spawn(worker(&host, &seen).run_until(stop.clone()));
        host.until("a claim is in flight", |h| {
            h.claims.load(Ordering::SeqCst) == 1
        })
        .await;
        stop.cancel();
        let report = run.await.expect("task").expect("report");
        assert_eq!(report.given_back, vec![id], "answered {after:?} after");
        assert_eq!(*lock(&host.releases), vec![id]);
        assert_eq!(seen.started.load(Ordering::SeqCst), 0, "never started");
        assert_eq!(host.sent_for(id), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_handed_over_beyond_what_a_claim_asked_for_are_given_back() {
    let host = fake();
    *lock(&host.overfill) = true;
    let seen = Arc::new(Seen::default());
    let jobs: Vec<HostedJob> = (0..3).map(|_| step_job(Step::default())).collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.job.id).collect();
    host.push(jobs);
    let w = Started::new(worker(&host, &seen).concurrency(1));
    host.until("one settled, two given back", |h| {
        lock(&h.settled).len() == 1 && lock(&h.releases).len() == 2
    })
    .await;
    w.stop().await;
    let settled = lock(&host.settled)[0].id;
    let mut handled: Vec<JobId> = lock(&host.releases).clone();
    handled.push(settled);
    handled.sort_by_key(|id| id.to_string());
    let mut all = ids.clone();
    all.sort_by_key(|id| id.to_string());
    assert_eq!(handled, all, "each job once: run or given back");
}

#[tokio::test]
async fn empty_answers_that_come_at_once_do_not_make_the_claim_loop_spin() {
    let host = fake();
    *lock(&host.answer_empty_at_once) = true;
    let seen = Arc::new(Seen::default());
    let w = Started::new(
        worker(&host, &seen)
            .poll_wait(Duration::from_secs(1))
            .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50)),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let claims = host.claims.load(Ordering::SeqCst);
    w.stop().await;
    assert!(claims >= 2, "it keeps asking: {claims}");
    assert!(claims < 60, "{claims} claims in 300 ms");
}

#[tokio::test(start_paused = true)]
async fn a_handler_finishing_as_shutdown_gives_its_job_back_is_settled_never_twice() {
    let host = fake();
    let seen = Arc::new(Seen::default());
    let j = step_job(Step::default());
    let id = j.job.id;
    host.push([j]);
    let held = Arc::new(AtomicUsize::new(0));
    let (h, hd) = (host.clone(), held.clone());
    // The handler has returned; its attempt pauses before settling until shutdown has
    // taken the job to give it back.
    let hold: crate::attempt::Hold = Arc::new(move |id| {
        let (h, hd) = (h.clone(), hd.clone());
        Box::pin(async move {
            hd.fetch_add(1, Ordering::SeqCst);
            h.note_changed();
            h.until("shutdown gives the job back", |h| {
                lock(&h.releases).contains(&id)
            })
            .await;
        })
    });
    let w = Started::new(
        worker(&host, &seen)
            .grace(Duration::from_millis(50))
            .hold_before_settle(hold),
    );
    host.until("the handler returned", |_| held.load(Ordering::SeqCst) == 1)
        .await;
    let report = w.stop().await;
    assert_eq!(report.given_back, vec![id]);
    assert_eq!(host.sent_for(id), 0, "given back, so not settled too");
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_jobs_back_all_at_once_and_ends_within_grace_and_margin() {
    let host = fake();
    // Each give-back takes 3 s: one after another, three would take 9 s.
    *lock(&host.release_delay) = Some(Duration::from_secs(3));
    let seen = Arc::new(Seen::default());
    let jobs: Vec<HostedJob> = (0..3)
        .map(|_| {
            step_job(Step {
                hang: true,
                ..Step::default()
            })
        })
        .collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.job.id).collect();
    // The third was lost meanwhile: no longer this worker's, so in none of the lists.
    lock(&host.release_lost).insert(ids[2]);
    host.push(jobs);
    let grace = Duration::from_secs(1);
    let w = Started::new(worker(&host, &seen).grace(grace));
    seen.until("three handlers run", |s| {
        s.started.load(Ordering::SeqCst) == 3
    })
    .await;
    let began = tokio::time::Instant::now();
    let mut report = w.stop().await;
    let took = began.elapsed();
    assert!(took <= grace + SHUTDOWN_MARGIN, "took {took:?}");
    report.given_back.sort_by_key(|id| id.to_string());
    let mut requeued = vec![ids[0], ids[1]];
    requeued.sort_by_key(|id| id.to_string());
    assert_eq!(report.given_back, requeued);
    assert!(report.not_given_back.is_empty(), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_host_that_never_answers_does_not_hold_shutdown_past_its_deadline() {
    let host = fake();
    *lock(&host.release_hangs) = true;
    host.settles_away.store(usize::MAX, Ordering::SeqCst);
    let seen = Arc::new(Seen::default());
    let stuck = step_job(Step {
        hang: true,
        ..Step::default()
    });
    let done = step_job(Step::default());
    let (stuck_id, done_id) = (stuck.job.id, done.job.id);
    host.push([stuck, done]);
    let grace = Duration::from_secs(1);
    let w = Started::new(worker(&host, &seen).grace(grace));
    host.until("the finished one is being sent", |h| {
        h.sent_for(done_id) >= 1
    })
    .await;
    let began = tokio::time::Instant::now();
    let report = w.stop().await;
    let took = began.elapsed();
    assert!(took <= grace + SHUTDOWN_MARGIN, "took {took:?}");
    assert_eq!(report.not_given_back, vec![stuck_id]);
    assert!(report.given_back.is_empty());
}
