//! The Rust worker library (`errand-worker`) and typed jobs of `errand-client`, against a
//! real `errand serve` over HTTP, and against an in-process engine with the same handlers.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_api::{EnqueueLimits, EnqueueRequest};
use errand_client::{Client, HttpJobHost, JobType, WaitError};
use errand_core::{JobId, JobKind, JobState, LeaseToken, NewLogLine, Progress, QueueName};
use errand_runner::host::{HostError, HostedJob, RunSettlement, SettledAndClaimed};
use errand_testkit::eventually;
use errand_worker::{CancellationToken, JobContext, JobError, JobHost, ShutdownReport, Worker};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// The typed job every test runs: add two numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
    /// How long the handler takes.
    #[serde(default)]
    sleep_ms: u64,
    /// Attempts that fail before one succeeds.
    #[serde(default)]
    fail_first: u32,
    /// Fail with a non-retryable error.
    #[serde(default)]
    fatal: bool,
}

impl Add {
    fn new(a: i64, b: i64) -> Self {
        Self {
            a,
            b,
            sleep_ms: 0,
            fail_first: 0,
            fatal: false,
        }
    }
}

impl JobType for Add {
    const KIND: &'static str = "add";
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sum {
    sum: i64,
    attempt: u32,
}

/// Counts each job's handler runs, and the most that ran at once.
#[derive(Default)]
struct Tally {
    runs: Mutex<HashMap<JobId, u32>>,
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Tally {
    fn runs(&self) -> HashMap<JobId, u32> {
        self.runs.lock().expect("tally").clone()
    }
}

/// The handler: the sum, after its sleep and its planned failures.
async fn add(tally: Arc<Tally>, ctx: JobContext, job: Add) -> Result<Sum, JobError> {
    *tally
        .runs
        .lock()
        .expect("tally")
        .entry(ctx.id())
        .or_default() += 1;
    let now = tally.now.fetch_add(1, Ordering::SeqCst) + 1;
    tally.peak.fetch_max(now, Ordering::SeqCst);
    if job.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    }
    tally.now.fetch_sub(1, Ordering::SeqCst);
    if job.fatal {
        return Err(JobError::dead("the numbers are cursed"));
    }
    if ctx.attempt() <= job.fail_first {
        return Err(JobError::retry_in(
            format!("planned failure {}", ctx.attempt()),
            Duration::from_millis(10),
        ));
    }
    Ok(Sum {
        sum: job.a + job.b,
        attempt: ctx.attempt(),
    })
}

/// A worker over HTTP, running until its token is cancelled.
struct Running {
    stop: CancellationToken,
    task: JoinHandle<ShutdownReport>,
}

impl Running {
    async fn stop(self) -> ShutdownReport {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the worker stops")
            .expect("the worker task")
    }
}

fn run(worker: Worker) -> Running {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move { worker.run_until(token).await.expect("worker runs") });
    Running { stop, task }
}

fn http_worker(client: &Client, lease: Duration, tally: &Arc<Tally>) -> Worker {
    let host = HttpJobHost::new(client.clone(), "test-worker", lease);
    let tally = tally.clone();
    Worker::new(Arc::new(host))
        .poll_wait(Duration::from_secs(1))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .register::<Add, _>(move |ctx, job| add(tally.clone(), ctx, job))
}

async fn succeeded(client: &Client) -> u64 {
    client
        .queue("default")
        .await
        .map(|q| q.counts.succeeded)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_typed_job_is_enqueued_run_and_its_result_read_typed() {
    let server = common::server().await;
    let client = server
        .client()
        .expect("client")
        .with_token("not-checked-yet");
    let tally = Arc::new(Tally::default());
    let worker = run(http_worker(&client, Duration::from_secs(30), &tally).concurrency(2));

    let job = client.enqueue(Add::new(2, 3)).await.expect("enqueue");
    assert_eq!(job.kind.as_str(), "add");
    let sum: Sum = client
        .wait_result(job.id, Duration::from_secs(30))
        .await
        .expect("result");
    assert_eq!(sum, Sum { sum: 5, attempt: 1 });

    // Every option stays reachable: the typed job's request is a plain EnqueueRequest.
    let mut req = Add::new(1, 1).to_request().expect("request");
    req.priority = Some(7);
    req.tags = vec!["typed".into()];
    let job = client.enqueue(&req).await.expect("enqueue request");
    assert_eq!(job.priority, 7);
    let sum: Sum = client
        .wait_result(job.id, Duration::from_secs(30))
        .await
        .expect("result");
    assert_eq!(sum.sum, 2);

    // Cancel and retry of a job no worker claims.
    let mut other = EnqueueRequest::new("nobody_claims_this");
    other.payload = Some(serde_json::json!({}));
    let job = client.enqueue(other).await.expect("enqueue");
    client.cancel(job.id).await.expect("cancel");
    match client
        .wait_result::<Sum>(job.id, Duration::from_secs(5))
        .await
    {
        Err(WaitError::Ended { state, .. }) => assert_eq!(state, JobState::Cancelled),
        other => panic!("a cancelled job has no result: {other:?}"),
    }
    let again = client.retry(job.id).await.expect("retry");
    assert!(!again.state.is_final(), "{:?}", again.state);
    match client
        .wait_result::<Sum>(job.id, Duration::from_millis(300))
        .await
    {
        Err(WaitError::TimedOut { .. }) => {}
        other => panic!("nobody runs it: {other:?}"),
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_at_concurrency_16_are_each_done_once() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let tally = Arc::new(Tally::default());
    let worker = run(http_worker(&client, Duration::from_secs(30), &tally).concurrency(16));

    let mut ids = Vec::new();
    for chunk in 0..4 {
        let jobs = (0..250).map(|i| Add {
            sleep_ms: 1,
            ..Add::new(chunk, i)
        });
        let answer = client.enqueue_many(jobs).await.expect("batch");
        ids.extend(answer.jobs.iter().map(|j| j.id));
    }
    assert_eq!(ids.len(), 1000);
    eventually("1,000 jobs succeeded", Duration::from_secs(120), || async {
        (succeeded(&client).await == 1000).then_some(())
    })
    .await;
    let report = worker.stop().await;
    assert!(report.given_back.is_empty());
    let runs = tally.runs();
    assert_eq!(runs.len(), 1000, "every job ran");
    assert!(
        runs.values().all(|&n| n == 1),
        "each job ran once: {:?}",
        runs.values().filter(|&&n| n != 1).count()
    );
    for id in &ids {
        assert_eq!(runs.get(id), Some(&1));
    }
    let peak = tally.peak.load(Ordering::SeqCst);
    assert!(peak <= 16, "at most 16 at once, saw {peak}");
    assert!(peak > 1, "jobs ran concurrently, saw {peak}");
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_a_dead_error_is_not() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let tally = Arc::new(Tally::default());
    let worker = run(http_worker(&client, Duration::from_secs(30), &tally));

    let flaky = client
        .enqueue(Add {
            fail_first: 2,
            ..Add::new(4, 4)
        })
        .await
        .expect("enqueue");
    let sum: Sum = client
        .wait_result(flaky.id, Duration::from_secs(30))
        .await
        .expect("result after retries");
    assert_eq!(sum, Sum { sum: 8, attempt: 3 });

    let mut req = Add {
        fatal: true,
        ..Add::new(1, 2)
    }
    .to_request()
    .expect("request");
    req.max_attempts = Some(5);
    let fatal = client.enqueue(req).await.expect("enqueue");
    match client
        .wait_result::<Sum>(fatal.id, Duration::from_secs(30))
        .await
    {
        Err(WaitError::Ended { state, error, .. }) => {
            assert_eq!(state, JobState::Dead);
            assert_eq!(error.as_deref(), Some("the numbers are cursed"));
        }
        other => panic!("dead at once: {other:?}"),
    }
    let job = client.job(fatal.id, None).await.expect("job");
    assert_eq!(job.attempt, 1, "no retry of a dead error");

    // A payload that does not read as the kind's type: dead at once, saying why.
    let mut bad = EnqueueRequest::new("add");
    bad.payload = Some(serde_json::json!({"a": "one"}));
    let bad = client.enqueue(bad).await.expect("enqueue");
    match client
        .wait_result::<Sum>(bad.id, Duration::from_secs(30))
        .await
    {
        Err(WaitError::Ended { state, error, .. }) => {
            assert_eq!(state, JobState::Dead);
            let error = error.unwrap_or_default();
            assert!(error.contains("payload does not read as"), "{error}");
        }
        other => panic!("dead at once: {other:?}"),
    }
    worker.stop().await;
}

#[tokio::test]
async fn heartbeats_keep_a_job_longer_than_its_lease() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let tally = Arc::new(Tally::default());
    let worker = run(http_worker(&client, Duration::from_secs(1), &tally).concurrency(2));

    let job = client
        .enqueue(Add {
            sleep_ms: 3000,
            ..Add::new(20, 22)
        })
        .await
        .expect("enqueue");
    let sum: Sum = client
        .wait_result(job.id, Duration::from_secs(30))
        .await
        .expect("result");
    assert_eq!(
        sum,
        Sum {
            sum: 42,
            attempt: 1
        }
    );
    assert_eq!(tally.runs().get(&job.id), Some(&1), "one run");
    worker.stop().await;
}

/// An [`HttpJobHost`] that counts the settlements the worker sends, per job: what the
/// server answers to them cannot show whether the worker sent one it should not have.
struct Counting {
    http: HttpJobHost,
    sent: Mutex<HashMap<JobId, u32>>,
    /// Settle calls of their own, and settlements that rode on a claim.
    settle_calls: AtomicUsize,
    carried: AtomicUsize,
}

impl Counting {
    fn new(http: HttpJobHost) -> Self {
        Self {
            http,
            sent: Mutex::default(),
            settle_calls: AtomicUsize::new(0),
            carried: AtomicUsize::new(0),
        }
    }

    fn count(&self, settlements: &[RunSettlement]) {
        let mut sent = self.sent.lock().expect("counts");
        for s in settlements {
            *sent.entry(s.id).or_default() += 1;
        }
    }

    fn sent_for(&self, id: JobId) -> u32 {
        self.sent
            .lock()
            .expect("counts")
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl JobHost for Counting {
    async fn claim(
        &self,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<Vec<HostedJob>, HostError> {
        self.http.claim(queue, kinds, max, wait).await
    }
    fn lease(&self) -> Option<Duration> {
        self.http.lease()
    }
    async fn heartbeat(
        &self,
        id: JobId,
        lease_token: LeaseToken,
        progress: Option<Progress>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<(), HostError> {
        self.http
            .heartbeat(id, lease_token, progress, checkpoint)
            .await
    }
    async fn settle(
        &self,
        settlements: Vec<RunSettlement>,
    ) -> Result<Vec<Result<(), HostError>>, HostError> {
        self.count(&settlements);
        self.settle_calls.fetch_add(1, Ordering::SeqCst);
        self.http.settle(settlements).await
    }
    async fn settle_and_claim(
        &self,
        settlements: Vec<RunSettlement>,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<SettledAndClaimed, HostError> {
        self.count(&settlements);
        self.carried.fetch_add(settlements.len(), Ordering::SeqCst);
        self.http
            .settle_and_claim(settlements, queue, kinds, max, wait)
            .await
    }
    async fn append_logs(
        &self,
        id: JobId,
        attempt: u32,
        lease_token: LeaseToken,
        lines: Vec<NewLogLine>,
    ) -> Result<(), HostError> {
        self.http.append_logs(id, attempt, lease_token, lines).await
    }
    async fn release(&self, id: JobId, lease_token: LeaseToken) -> Result<(), HostError> {
        self.http.release(id, lease_token).await
    }
    async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, HostError> {
        self.http.lease_acquire(name, holder, ttl).await
    }
    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), HostError> {
        self.http.lease_release(name, holder).await
    }
}

#[tokio::test]
async fn a_worker_s_settlements_ride_on_its_next_claim() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let mut ids = Vec::new();
    for n in 0..20 {
        let job = client
            .enqueue(Add {
                sleep_ms: 20,
                fail_first: u32::from(n % 5 == 0),
                ..Add::new(n, 1)
            })
            .await
            .expect("enqueue");
        ids.push(job.id);
    }
    let host = Arc::new(Counting::new(HttpJobHost::new(
        client.clone(),
        "rider",
        Duration::from_secs(30),
    )));
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    // One slot: each job ends while the claim loop waits for that slot, so its settlement
    // goes with the claim that refills it.
    let worker = run(Worker::new(host.clone())
        .concurrency(1)
        .poll_wait(Duration::from_secs(1))
        .register::<Add, _>(move |ctx, job| add(t.clone(), ctx, job)));
    eventually("every job succeeds", Duration::from_secs(30), || async {
        (succeeded(&client).await == 20).then_some(())
    })
    .await;
    worker.stop().await;
    for id in &ids {
        let job = client.job(*id, None).await.expect("job");
        assert_eq!(job.state, JobState::Succeeded);
    }
    // 20 completions and 4 failures (retried), every one carried by a claim.
    assert_eq!(
        host.carried.load(Ordering::SeqCst),
        24,
        "settlements carried by claims"
    );
    assert_eq!(
        host.settle_calls.load(Ordering::SeqCst),
        0,
        "settle calls of their own"
    );
    assert!(tally.runs().values().all(|&n| n <= 2));
}

/// A job whose handler waits for its lease to be lost.
#[derive(Debug, Serialize, Deserialize)]
struct Watch {}

impl JobType for Watch {
    const KIND: &'static str = "watch";
}

#[tokio::test]
async fn a_cancelled_job_tells_its_handler_and_nothing_is_settled() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let started = Arc::new(tokio::sync::Notify::new());
    let told = Arc::new(AtomicUsize::new(0));
    let (s, t) = (started.clone(), told.clone());
    let host = Arc::new(Counting::new(HttpJobHost::new(
        client.clone(),
        "watcher",
        Duration::from_secs(1),
    )));
    let worker = run(Worker::new(host.clone())
        .poll_wait(Duration::from_secs(1))
        .register::<Watch, _>(move |ctx: JobContext, _job: Watch| {
            let (s, t) = (s.clone(), t.clone());
            async move {
                s.notify_one();
                let lost = ctx.lease_lost().clone();
                if tokio::time::timeout(Duration::from_secs(20), lost.cancelled())
                    .await
                    .is_ok()
                {
                    t.fetch_add(1, Ordering::SeqCst);
                }
                // Returned after the loss: must not be settled.
                Ok(serde_json::json!({"finished": true}))
            }
        }));
    let job = client.enqueue(Watch {}).await.expect("enqueue");
    tokio::time::timeout(Duration::from_secs(30), started.notified())
        .await
        .expect("the handler starts");
    client.cancel(job.id).await.expect("cancel");
    eventually("the handler is told", Duration::from_secs(10), || async {
        (told.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    worker.stop().await;
    let job = client.job(job.id, None).await.expect("job");
    assert_eq!(job.state, JobState::Cancelled);
    // The server would refuse a settlement after the cancel anyway: what counts is that
    // the worker sends none.
    assert_eq!(host.sent_for(job.id), 0, "nothing settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_work_loses_nothing() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let tally = Arc::new(Tally::default());
    let slow = run(http_worker(&client, Duration::from_secs(30), &tally)
        .concurrency(4)
        .grace(Duration::from_millis(200)));

    let jobs = (0..12).map(|i| Add {
        sleep_ms: 5_000,
        ..Add::new(i, 0)
    });
    let ids: Vec<JobId> = client
        .enqueue_many(jobs)
        .await
        .expect("batch")
        .jobs
        .iter()
        .map(|j| j.id)
        .collect();
    eventually("4 handlers run", Duration::from_secs(30), || async {
        (tally.now.load(Ordering::SeqCst) == 4).then_some(())
    })
    .await;
    let report = slow.stop().await;
    assert_eq!(report.given_back.len(), 4, "{report:?}");
    assert!(report.not_given_back.is_empty());
    // Given back now, not when their 30 s leases lapse: ready for the next worker, as if
    // never claimed (the attempt is not counted and left no record).
    for id in &report.given_back {
        let job = client.job(*id, None).await.expect("job");
        assert_eq!(job.state, JobState::Available, "{id}");
        assert_eq!(job.attempt, 0, "{id}");
        assert_eq!(job.error, None, "{id}");
        let attempts = client.attempts(*id).await.expect("attempts").attempts;
        assert!(attempts.is_empty(), "{id}: {attempts:?}");
    }

    // A second worker, whose handler is quick, finishes everything.
    let quick_tally = Arc::new(Tally::default());
    let host = HttpJobHost::new(client.clone(), "quick", Duration::from_secs(30));
    let t = quick_tally.clone();
    let quick = run(Worker::new(Arc::new(host))
        .concurrency(8)
        .poll_wait(Duration::from_secs(1))
        .register::<Add, _>(move |ctx, job: Add| add(t.clone(), ctx, Add { sleep_ms: 0, ..job })));
    for id in &ids {
        let job = client
            .wait_job(*id, Duration::from_secs(60))
            .await
            .expect("job");
        assert_eq!(job.state, JobState::Succeeded, "{id}");
    }
    quick.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reconnects_after_a_server_restart_and_finishes_everything() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = errand_testkit::ServerProcess::start_in(&common::bin(), dir.path(), &[])
        .await
        .expect("server");
    let client = server.client().expect("client");
    let tally = Arc::new(Tally::default());
    let worker = run(http_worker(&client, Duration::from_secs(2), &tally).concurrency(8));

    let jobs = (0..300).map(|i| Add {
        sleep_ms: 20,
        ..Add::new(i, 1)
    });
    client.enqueue_many(jobs).await.expect("batch");
    eventually("some jobs done", Duration::from_secs(60), || async {
        (succeeded(&client).await >= 30).then_some(())
    })
    .await;
    server.restart_same_port().await.expect("restart");
    assert_eq!(server.url(), client.base_url(), "same address");
    eventually(
        "every job done after the restart",
        Duration::from_secs(120),
        || async { (succeeded(&client).await == 300).then_some(()) },
    )
    .await;
    worker.stop().await;
    assert_eq!(tally.runs().len(), 300);
}

/// A TCP proxy in front of a server. It counts the connections it is asked for and those
/// it could not pass on because the server was down, so a test sees a client trying again.
struct Proxy {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (a, r, upstream) = (accepted.clone(), refused.clone(), upstream.to_string());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (r, upstream) = (r.clone(), upstream.clone());
                tokio::spawn(async move {
                    match tokio::net::TcpStream::connect(&upstream).await {
                        Ok(mut outbound) => {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                        Err(_) => {
                            r.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            refused,
            task,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_rides_out_a_server_stopped_and_restarted_meanwhile() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = errand_testkit::ServerProcess::start_in(&common::bin(), dir.path(), &[])
        .await
        .expect("server");
    let direct = server.client().expect("client");
    let proxy = Proxy::start(server.url().trim_start_matches("http://")).await;
    let via_proxy = Client::new(&format!("http://{}", proxy.addr)).expect("client");
    let job = direct.enqueue(Add::new(2, 3)).await.expect("enqueue");
    let waiting = tokio::spawn(async move {
        via_proxy
            .wait_result::<Sum>(job.id, Duration::from_secs(120))
            .await
    });
    eventually(
        "the wait calls the server",
        Duration::from_secs(30),
        || async { (proxy.accepted.load(Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    server.kill9().await;
    eventually(
        "the wait calls again while the server is down",
        Duration::from_secs(30),
        || async { (proxy.refused.load(Ordering::SeqCst) >= 2).then_some(()) },
    )
    .await;
    assert!(
        !waiting.is_finished(),
        "the wait goes on while the server is down"
    );
    server.restart_same_port().await.expect("restart");
    let tally = Arc::new(Tally::default());
    let worker = run(http_worker(&direct, Duration::from_secs(30), &tally));
    let sum = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the wait ends")
        .expect("the wait's task")
        .expect("the wait rode out the restart and read the result");
    assert_eq!(sum.sum, 5);
    worker.stop().await;
    // An error that trying again would not cure still ends the wait at once.
    let missing = tokio::time::timeout(
        Duration::from_secs(10),
        direct.wait_job(JobId::new(), Duration::from_secs(60)),
    )
    .await
    .expect("a missing job ends the wait at once");
    assert!(
        matches!(missing, Err(WaitError::Client(ref e)) if e.status() == Some(404)),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_wait_that_never_reaches_the_server_times_out_naming_the_last_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let within = Duration::from_millis(1_500);
    let began = std::time::Instant::now();
    let err = client
        .wait_result::<Sum>(JobId::new(), within)
        .await
        .expect_err("nobody listens");
    let took = began.elapsed();
    assert!(took >= within, "tried until the deadline, not {took:?}");
    assert!(took < within + Duration::from_secs(5), "took {took:?}");
    match &err {
        WaitError::Unreachable {
            last_state: None,
            waited,
            last_error: errand_client::ClientError::Transport { cause, .. },
            ..
        } => {
            assert_eq!(*waited, within);
            assert_eq!(cause, "connection refused");
        }
        other => panic!("not the wait's timeout: {other:?}"),
    }
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_worker_and_handler_run_in_process_on_an_engine() {
    use errand_server::scripts::{EngineHost, LogBounds};
    use errand_store_sqlite::{SqliteOptions, SqliteStore};

    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("store");
    let engine =
        errand_engine::Engine::new(Arc::new(store), errand_engine::EngineConfig::default());
    let host = EngineHost::new(engine.clone(), LogBounds::default());
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    let worker = run(Worker::new(host)
        .concurrency(4)
        .poll_wait(Duration::from_millis(500))
        .register::<Add, _>(move |ctx, job| add(t.clone(), ctx, job)));

    let limits = EnqueueLimits {
        max_payload_bytes: 1 << 20,
    };
    let jobs = (0..20)
        .map(|i| {
            Add {
                fail_first: u32::from(i == 0),
                ..Add::new(i, i)
            }
            .to_request()
            .expect("request")
            .into_new_job(&limits)
            .expect("new job")
        })
        .collect();
    let inserted = engine.enqueue_many(jobs).await.expect("enqueue");
    for (i, ins) in inserted.iter().enumerate() {
        let job = eventually("the job succeeds", Duration::from_secs(30), || async {
            let job = engine
                .job(ins.job.id, Duration::from_millis(200))
                .await
                .expect("job");
            (job.state == JobState::Succeeded).then_some(job)
        })
        .await;
        let sum: Sum = serde_json::from_value(job.result.expect("result")).expect("sum");
        assert_eq!(sum.sum, 2 * i as i64);
        assert_eq!(sum.attempt, if i == 0 { 2 } else { 1 });
    }
    assert_eq!(
        QueueName::parse("default").expect("queue"),
        inserted[0].job.queue
    );
    worker.stop().await;
    engine.shutdown();
}

#[tokio::test]
async fn a_job_given_back_on_its_last_attempt_stays_available_uncounted() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let tally = Arc::new(Tally::default());
    let worker = run(
        http_worker(&client, Duration::from_secs(30), &tally).grace(Duration::from_millis(100))
    );
    let mut last = Add {
        sleep_ms: 60_000,
        ..Add::new(1, 1)
    }
    .to_request()
    .expect("request");
    last.max_attempts = Some(1);
    let job = client.enqueue(last).await.expect("enqueue");
    let before = job.attempt;
    eventually("the handler runs", Duration::from_secs(30), || async {
        (tally.now.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let report = worker.stop().await;
    assert_eq!(report.given_back, vec![job.id], "{report:?}");
    assert!(report.not_given_back.is_empty(), "{report:?}");
    let job = client.job(job.id, None).await.expect("job");
    assert_eq!(job.state, JobState::Available, "not dead: {job:?}");
    assert_eq!(job.attempt, before, "the attempt is not counted");
    assert_eq!(job.error, None);
    let attempts = client.attempts(job.id).await.expect("attempts").attempts;
    assert!(
        attempts.is_empty(),
        "the attempt is forgotten: {attempts:?}"
    );
}

#[tokio::test]
async fn an_http_host_release_that_gives_back_nothing_says_the_lease_is_lost() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let host = HttpJobHost::new(client.clone(), "releaser", Duration::from_secs(30));
    let job = client.enqueue(Add::new(1, 2)).await.expect("enqueue");
    let queue = QueueName::parse("default").expect("queue");
    let kinds = [JobKind::parse("add").expect("kind")];
    let claimed = host
        .claim(&queue, &kinds, 1, Duration::from_secs(5))
        .await
        .expect("claim")
        .pop()
        .expect("a job");
    assert_eq!(claimed.job.id, job.id);
    let token = claimed.lease_token;
    assert_eq!(host.release(job.id, token).await, Ok(()), "given back");
    let now = client.job(job.id, None).await.expect("job");
    assert_eq!((now.state, now.attempt), (JobState::Available, 0));
    assert_eq!(
        host.release(job.id, token).await,
        Err(HostError::LeaseLost),
        "the token no longer holds the job"
    );
    assert_eq!(
        host.release(JobId::new(), token).await,
        Err(HostError::NotFound)
    );
}

#[tokio::test]
async fn an_engine_host_release_that_gives_back_nothing_says_the_lease_is_lost() {
    use errand_server::scripts::{EngineHost, LogBounds};
    use errand_store_sqlite::{SqliteOptions, SqliteStore};

    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("store");
    let engine =
        errand_engine::Engine::new(Arc::new(store), errand_engine::EngineConfig::default());
    let host = EngineHost::new(engine.clone(), LogBounds::default());
    let limits = EnqueueLimits {
        max_payload_bytes: 1 << 20,
    };
    let new_job = Add::new(1, 2)
        .to_request()
        .expect("request")
        .into_new_job(&limits)
        .expect("new job");
    engine.enqueue_many(vec![new_job]).await.expect("enqueue");
    let queue = QueueName::parse("default").expect("queue");
    let kinds = [JobKind::parse("add").expect("kind")];
    let claimed = host
        .claim(&queue, &kinds, 1, Duration::from_secs(5))
        .await
        .expect("claim")
        .pop()
        .expect("a job");
    let (id, token) = (claimed.job.id, claimed.lease_token);
    assert_eq!(host.release(id, token).await, Ok(()), "given back");
    let job = engine.job(id, Duration::ZERO).await.expect("job");
    assert_eq!((job.state, job.attempt), (JobState::Available, 0));
    assert_eq!(
        host.release(id, token).await,
        Err(HostError::LeaseLost),
        "the token no longer holds the job: nothing was given back"
    );
    assert_eq!(
        host.release(JobId::new(), token).await,
        Err(HostError::NotFound)
    );
    engine.shutdown();
}

/// A job whose handler ends in a way the server would refuse to store as it is.
#[derive(Debug, Serialize, Deserialize)]
struct Odd {
    mode: String,
}

impl JobType for Odd {
    const KIND: &'static str = "odd";
}

async fn odd(_: JobContext, job: Odd) -> Result<serde_json::Value, JobError> {
    match job.mode.as_str() {
        "nul_error" => Err(JobError::retry_in("bad\0byte", Duration::from_secs(60))),
        "endless_retry" => Err(JobError::retry_in("later", Duration::MAX)),
        "nul_result" => Ok(serde_json::json!({"s": "nul\u{0}here"})),
        _ => Ok(serde_json::json!({"fine": true})),
    }
}

#[tokio::test]
async fn odd_outcomes_are_mended_and_cost_no_other_settlement_of_their_batch() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let modes = ["nul_error", "endless_retry", "nul_result", "fine"];
    let ids: Vec<JobId> = client
        .enqueue_many(modes.iter().map(|m| Odd {
            mode: m.to_string(),
        }))
        .await
        .expect("batch")
        .jobs
        .iter()
        .map(|j| j.id)
        .collect();
    // All four in one claim and, with a long window, one settle call.
    let host = HttpJobHost::new(client.clone(), "odd", Duration::from_secs(30));
    let worker = run(Worker::new(Arc::new(host))
        .concurrency(4)
        .poll_wait(Duration::from_secs(1))
        .settle_window(Duration::from_millis(500))
        .register::<Odd, _>(odd));
    // Well within the 30 s lease: a refused batch would leave them running until then.
    let settled = |state: JobState, id: JobId| {
        let client = client.clone();
        async move {
            eventually("settled", Duration::from_secs(10), || async {
                let job = client.job(id, None).await.ok()?;
                (job.state == state).then_some(job)
            })
            .await
        }
    };
    let nul_error = settled(JobState::Scheduled, ids[0]).await;
    assert_eq!(nul_error.error.as_deref(), Some("bad\u{FFFD}byte"));
    let endless = settled(JobState::Scheduled, ids[1]).await;
    assert_eq!(endless.error.as_deref(), Some("later"));
    let in_29_days = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(29 * 24);
    assert!(endless.run_at > in_29_days, "retried at {}", endless.run_at);
    let nul_result = settled(JobState::Succeeded, ids[2]).await;
    assert_eq!(
        nul_result.result,
        Some(serde_json::json!({"s": "nul\u{FFFD}here"}))
    );
    settled(JobState::Succeeded, ids[3]).await;
    worker.stop().await;
}

/// A job that takes a while: the worker process below runs it.
#[derive(Debug, Serialize, Deserialize)]
struct Slow {
    ms: u64,
}

impl JobType for Slow {
    const KIND: &'static str = "slow";
}

/// The environment variable that makes [`worker_process_child`] a worker process.
const CHILD_URL: &str = "ERRAND_TEST_WORKER_PROCESS_URL";

/// Not a test on its own: the body of the worker process that
/// `a_worker_process_stopped_by_sigterm_finishes_its_running_job_and_exits_0` starts (this
/// same test binary, run with [`CHILD_URL`] set). Without that variable it does nothing.
/// It runs `slow` jobs until SIGTERM, as an application's worker would, and exits 0 only
/// when nothing had to be given back.
#[tokio::test]
async fn worker_process_child() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    let client = Client::new(&url).expect("client");
    let host = HttpJobHost::new(client, "child-process", Duration::from_secs(30));
    let report = Worker::new(Arc::new(host))
        .poll_wait(Duration::from_secs(1))
        .grace(Duration::from_secs(10))
        .register::<Slow, _>(|ctx: JobContext, job: Slow| async move {
            println!("started {}", ctx.id());
            tokio::time::sleep(Duration::from_millis(job.ms)).await;
            Ok(serde_json::json!({"slept_ms": job.ms}))
        })
        .run(async move {
            term.recv().await;
            println!("SIGTERM");
        })
        .await
        .expect("the worker runs");
    println!("stopped: {report:?}");
    assert_eq!(report, ShutdownReport::default(), "nothing given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_stopped_by_sigterm_finishes_its_running_job_and_exits_0() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let server = common::server().await;
    let client = server.client().expect("client");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "worker_process_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, server.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker process");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let job = client.enqueue(Slow { ms: 2_000 }).await.expect("enqueue");
    let started = format!("started {}", job.id);
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            // The harness starts the line ("test worker_process_child ... ").
            if line.ends_with(&started) {
                return;
            }
        }
        panic!("the worker process ended before it ran the job");
    })
    .await
    .expect("the worker process runs the job");
    // Keep its stdout drained, and keep what it says for the failure message.
    let said = Arc::new(Mutex::new(Vec::new()));
    let keep = said.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            keep.lock().expect("lines").push(line);
        }
    });
    assert_eq!(
        client.job(job.id, None).await.expect("job").state,
        JobState::Running
    );

    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    // The 2 s job finishes within the 10 s grace; the process exits once it is settled.
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the worker process exits within the grace period")
        .expect("wait");
    assert!(
        status.success(),
        "{status}; it said {:?}",
        said.lock().expect("lines")
    );
    let job = client.job(job.id, None).await.expect("job");
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempt, 1, "ran once, never given back");
    assert_eq!(job.result, Some(serde_json::json!({"slept_ms": 2000})));
}
