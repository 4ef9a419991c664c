//! [`Worker`]: claims jobs of the registered kinds from one queue and runs their handlers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_client::JobType;
use errand_core::{JobId, JobKind, LeaseToken, QueueName};
use errand_runner::host::{HostError, HostedJob, JobHost, RunSettlement, RunVerdict};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::context::{Claimed, JobContext};
use crate::error::Failure;
use crate::handler::{ErasedHandler, Handler, Handlers, Typed};
use crate::{settler, JobError, WorkerError};

/// The most jobs one claim asks for (the server's limit).
const MAX_CLAIM: usize = errand_core::limits::MAX_CLAIM as usize;

/// The lease assumed when neither the host nor the job tells it.
const FALLBACK_LEASE: Duration = Duration::from_secs(30);

/// Runs handlers for the jobs of one queue, up to a number at once, through a
/// [`JobHost`]: [`errand_client::HttpJobHost`] for a server over HTTP, or the engine host
/// of `errand_server::scripts::EngineHost` inside the server's own process.
///
/// ```no_run
/// # use std::sync::Arc; use std::time::Duration;
/// # use errand_worker::{JobContext, JobError, Worker};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SendEmail { to: String }
/// impl errand_client::JobType for SendEmail { const KIND: &'static str = "send_email"; }
///
/// async fn send_email(ctx: JobContext, job: SendEmail) -> Result<String, JobError> {
///     Ok(format!("sent to {} (attempt {})", job.to, ctx.attempt()))
/// }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = errand_client::Client::new("http://127.0.0.1:7878")?;
/// let host = errand_client::HttpJobHost::new(client, "mailer-1", Duration::from_secs(30));
/// let report = Worker::new(Arc::new(host))
///     .concurrency(16)
///     .register::<SendEmail, _>(send_email)
///     .run(async { let _ = tokio::signal::ctrl_c().await; })
///     .await?;
/// println!("gave back {} jobs", report.given_back.len());
/// # Ok(()) }
/// ```
pub struct Worker {
    host: Arc<dyn JobHost>,
    queue: String,
    concurrency: usize,
    poll_wait: Duration,
    settle_window: Duration,
    grace: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    handlers: Handlers,
    duplicate: Option<String>,
}

/// What a worker did when it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs whose handlers had not finished within the grace period: given back to their
    /// queue through the host's `release` (over HTTP a failure with an immediate retry,
    /// which counts the attempt; in-process an uncounted release).
    pub given_back: Vec<JobId>,
    /// Jobs among those that could not be given back (the host was away): they run again
    /// when their leases lapse.
    pub not_given_back: Vec<JobId>,
}

/// A running attempt, as shutdown sees it.
struct Running {
    lease_token: LeaseToken,
    handler: AbortHandle,
}

/// What every attempt's task shares.
struct Shared {
    host: Arc<dyn JobHost>,
    handlers: Handlers,
    settle: mpsc::UnboundedSender<RunSettlement>,
    running: Mutex<HashMap<JobId, Running>>,
    shutdown: CancellationToken,
    lease: Option<Duration>,
}

impl Worker {
    /// A worker over `host` for the `default` queue, running up to 8 jobs at once.
    pub fn new<H: JobHost>(host: Arc<H>) -> Self {
        Self {
            host,
            queue: "default".into(),
            concurrency: 8,
            poll_wait: Duration::from_secs(30),
            settle_window: Duration::from_millis(2),
            grace: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            handlers: HashMap::new(),
            duplicate: None,
        }
    }

    /// The queue to claim from (default `default`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Jobs run at once at most (default 8, at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long one claim waits for a job before it asks again (default 30 s; the server
    /// caps it at 60 s).
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait;
        self
    }

    /// How long a settlement waits for others to share its call (default 2 ms).
    pub fn settle_window(mut self, window: Duration) -> Self {
        self.settle_window = window;
        self
    }

    /// How long running handlers may take to finish once shutdown begins (default 30 s);
    /// what still runs then is given back.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The delays between attempts to reach a host that is away: from `min`, doubling, up
    /// to `max`, jittered (defaults 100 ms and 5 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Runs `handler` for jobs of kind `J::KIND`.
    pub fn register<J: JobType, H: Handler<J>>(mut self, handler: H) -> Self {
        let erased: Arc<dyn ErasedHandler> = Arc::new(Typed::<J, H> {
            handler,
            _job: std::marker::PhantomData,
        });
        if self.handlers.insert(J::KIND.to_string(), erased).is_some() {
            self.duplicate.get_or_insert_with(|| J::KIND.to_string());
        }
        self
    }

    /// Claims and runs jobs until `shutdown` resolves; then stops claiming, lets running
    /// handlers finish within the grace period, gives back what still runs, and returns
    /// once every settlement has been sent.
    ///
    /// A host that is away (server down, store unavailable) is called again with capped,
    /// jittered backoff; the loop never ends on its own.
    ///
    /// # Errors
    /// The worker cannot start: no handler, a kind registered twice, a bad kind or queue
    /// name.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ShutdownReport, WorkerError> {
        let token = CancellationToken::new();
        let run = self.run_until(token.clone());
        tokio::pin!(run);
        tokio::pin!(shutdown);
        tokio::select! {
            // Ended on its own: it could not start.
            out = &mut run => out,
            () = &mut shutdown => {
                token.cancel();
                run.await
            }
        }
    }

    /// [`run`](Self::run), stopped by a cancellation token.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_until(
        self,
        shutdown: CancellationToken,
    ) -> Result<ShutdownReport, WorkerError> {
        if let Some(kind) = self.duplicate {
            return Err(WorkerError::DuplicateKind(kind));
        }
        if self.handlers.is_empty() {
            return Err(WorkerError::NoHandlers);
        }
        let queue = QueueName::parse(&self.queue)
            .map_err(|e| WorkerError::BadName(format!("queue `{}`: {e}", self.queue)))?;
        let mut kinds = self
            .handlers
            .keys()
            .map(|k| {
                JobKind::parse(k).map_err(|e| WorkerError::BadName(format!("kind `{k}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        kinds.sort_by(|a, b| a.as_str().cmp(b.as_str()));

        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let settling = tokio::spawn(settler::run(
            self.host.clone(),
            settle_rx,
            self.settle_window,
        ));
        let shared = Arc::new(Shared {
            lease: self.host.lease(),
            host: self.host.clone(),
            handlers: self.handlers,
            settle: settle_tx,
            running: Mutex::new(HashMap::new()),
            shutdown: shutdown.clone(),
        });
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut backoff = Backoff::new(self.reconnect_min, self.reconnect_max);

        loop {
            // Reap finished attempts so the set does not grow.
            while tasks.try_join_next().is_some() {}
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => p,
                _ = shutdown.cancelled() => break,
            };
            let Ok(first) = first else { break };
            let mut permits = vec![first];
            while permits.len() < MAX_CLAIM {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            // Few slots free: other handlers are likely ending too; wait a moment (the
            // settle window) so that one claim takes several jobs instead of one each.
            if permits.len() < self.concurrency / 2 {
                let until = tokio::time::Instant::now() + self.settle_window;
                while permits.len() < self.concurrency.min(MAX_CLAIM) {
                    match tokio::time::timeout_at(until, slots.clone().acquire_owned()).await {
                        Ok(Ok(p)) => permits.push(p),
                        Ok(Err(_)) | Err(_) => break,
                    }
                }
            }
            let max = u32::try_from(permits.len()).unwrap_or(1);
            let claimed = tokio::select! {
                c = self.host.claim(&queue, &kinds, max, self.poll_wait) => c,
                // A claim dropped here is given back by the server, uncounted.
                _ = shutdown.cancelled() => break,
            };
            match claimed {
                Ok(jobs) => {
                    backoff.reset();
                    for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
                        start(&shared, &mut tasks, job, permit);
                    }
                }
                Err(e) => {
                    drop(permits);
                    let delay = backoff.next_delay();
                    match &e {
                        HostError::Unavailable(_) => {
                            tracing::info!(error = %e, ?delay, "claim: the host is away, trying again")
                        }
                        _ => tracing::warn!(error = %e, ?delay, "claim refused, trying again"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }

        let report = wind_down(&shared, &mut tasks, self.grace).await;
        drop(shared);
        let _ = settling.await;
        Ok(report)
    }
}

/// Stops what is left after shutdown: waits `grace` for running attempts, then aborts
/// their handlers and gives their jobs back.
async fn wind_down(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    grace: Duration,
) -> ShutdownReport {
    let finished =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_ok();
    let mut report = ShutdownReport::default();
    if finished {
        return report;
    }
    let left: Vec<(JobId, Running)> = match shared.running.lock() {
        Ok(mut running) => running.drain().collect(),
        Err(_) => vec![],
    };
    for (_, run) in &left {
        run.handler.abort();
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    for (id, run) in left {
        match shared.host.release(id, run.lease_token).await {
            Ok(()) => report.given_back.push(id),
            Err(HostError::LeaseLost | HostError::NotFound) => {}
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "could not give the job back; it runs again when its lease lapses");
                report.not_given_back.push(id);
            }
        }
    }
    report
}

/// Starts one attempt in a task of its own.
fn start(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    hosted: HostedJob,
    permit: OwnedSemaphorePermit,
) {
    let shared = shared.clone();
    tasks.spawn(async move {
        run_attempt(&shared, hosted).await;
        drop(permit);
    });
}

/// How often an attempt heartbeats: a third of its lease.
fn beat_every(shared: &Shared, hosted: &HostedJob) -> Duration {
    let lease = shared.lease.or_else(|| {
        let expires = hosted.job.lease_expires_at?;
        let left = expires.duration_since(jiff::Timestamp::now());
        Duration::try_from(left).ok()
    });
    (lease.unwrap_or(FALLBACK_LEASE) / 3).max(Duration::from_millis(20))
}

async fn run_attempt(shared: &Arc<Shared>, hosted: HostedJob) {
    let id = hosted.job.id;
    let lease_token = hosted.lease_token;
    let every = beat_every(shared, &hosted);
    let timeout = hosted.job.timeout_ms.map(Duration::from_millis);
    let lease_lost = CancellationToken::new();
    let job = hosted.job;
    let ctx = JobContext::new(
        Claimed {
            id,
            kind: job.kind.as_str().to_string(),
            queue: job.queue.as_str().to_string(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            tags: job.tags.iter().map(|t| t.to_string()).collect(),
            payload: job.payload,
            checkpoint: job.checkpoint,
            lease_token,
        },
        shared.host.clone(),
        lease_lost.clone(),
        shared.shutdown.child_token(),
    );
    let handler = shared.handlers.get(job.kind.as_str()).cloned();
    let outcome = match handler {
        None => Err(JobError::retry(format!(
            "this worker has no handler for kind {}",
            job.kind
        ))),
        Some(handler) => match handler.start(ctx.clone(), ctx.payload().clone()) {
            Err(bad_payload) => Err(bad_payload),
            Ok(run) => {
                // The handler runs in a task of its own: a panic there fails the attempt
                // instead of ending the worker, and shutdown can abort it.
                let task = tokio::spawn(run);
                if let Ok(mut running) = shared.running.lock() {
                    running.insert(
                        id,
                        Running {
                            lease_token,
                            handler: task.abort_handle(),
                        },
                    );
                }
                let _beats = AbortOnDrop(
                    tokio::spawn(heartbeats(
                        shared.host.clone(),
                        id,
                        lease_token,
                        every,
                        lease_lost.clone(),
                    ))
                    .abort_handle(),
                );
                let mut task = task;
                let out = match timeout {
                    None => Some((&mut task).await),
                    Some(limit) => match tokio::time::timeout(limit, &mut task).await {
                        Ok(out) => Some(out),
                        Err(_) => {
                            task.abort();
                            None
                        }
                    },
                };
                if let Ok(mut running) = shared.running.lock() {
                    running.remove(&id);
                }
                let Some(out) = out else {
                    return settle(
                        shared,
                        id,
                        lease_token,
                        &lease_lost,
                        Err(JobError::retry(format!(
                            "timed out after {:?} (the job's timeout)",
                            timeout.unwrap_or_default()
                        ))),
                    );
                };
                match out {
                    Ok(outcome) => outcome,
                    Err(e) if e.is_panic() => Err(JobError::retry(format!(
                        "the handler panicked: {}",
                        panic_message(e.into_panic())
                    ))),
                    Err(_) => return, // aborted by shutdown: given back there
                }
            }
        },
    };
    settle(shared, id, lease_token, &lease_lost, outcome);
}

/// Hands an attempt's outcome to the settler, unless its lease is lost.
fn settle(
    shared: &Shared,
    id: JobId,
    lease_token: LeaseToken,
    lease_lost: &CancellationToken,
    outcome: crate::handler::Outcome,
) {
    if lease_lost.is_cancelled() {
        tracing::info!(job = %id, "lease lost: the attempt's outcome is not settled");
        return;
    }
    let verdict = match outcome {
        Ok(result) => RunVerdict::Complete {
            result: Some(result),
        },
        Err(e) => RunVerdict::Fail {
            error: e.message().to_string(),
            retry_in: match e.failure() {
                Failure::Retry(delay) => delay,
                Failure::Dead => None,
            },
            dead: e.failure() == Failure::Dead,
        },
    };
    let _ = shared.settle.send(RunSettlement {
        id,
        lease_token,
        verdict,
        report: None,
    });
}

/// Aborts a task when dropped: an attempt's heartbeats end with it, however it ends.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the lease every `every` until the future is dropped; a lost lease (or a
/// cancelled job the host reports) fires `lease_lost` and beats no more.
async fn heartbeats(
    host: Arc<dyn JobHost>,
    id: JobId,
    lease_token: LeaseToken,
    every: Duration,
    lease_lost: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cancelled = host.cancelled(id);
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut cancelled => {
                lease_lost.cancel();
                return;
            }
        }
        match host.heartbeat(id, lease_token, None, None).await {
            Ok(()) => {}
            Err(HostError::LeaseLost | HostError::NotFound) => {
                lease_lost.cancel();
                return;
            }
            // Away or refusing now: the next beat tries again, within the lease.
            Err(e) => tracing::debug!(job = %id, error = %e, "heartbeat failed"),
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_core::{NewLogLine, Progress};
    use serde_json::Value;

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
        async fn settle(
            &self,
            _: Vec<RunSettlement>,
        ) -> Result<Vec<Result<(), HostError>>, HostError> {
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
}
