//! [`Worker`]: claims jobs of the registered kinds from one queue and runs their handlers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_client::JobType;
use errand_core::{JobKind, QueueName};
use errand_runner::host::{HostError, HostedJob, JobHost, SettledAndClaimed};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::attempt::{start, Shared};
use crate::backoff::Backoff;
use crate::handler::{ErasedHandler, Handler, Handlers, Typed};
use crate::outbox::Outbox;
use crate::shutdown::{wind_down, ShutdownReport, CLAIM_DRAIN};
use crate::{settler, WorkerError};

/// The most jobs one claim asks for (the server's limit).
const MAX_CLAIM: usize = errand_core::limits::MAX_CLAIM as usize;

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
    #[cfg(test)]
    hold_before_settle: Option<crate::attempt::Hold>,
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
            #[cfg(test)]
            hold_before_settle: None,
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
    /// what still runs then is given back. `run` returns at most
    /// [`SHUTDOWN_MARGIN`](crate::SHUTDOWN_MARGIN) later.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The delays between attempts to reach a host that is away, or to claim again after
    /// an empty answer that came before the poll wait ran out: from `min` (at least 1 ms),
    /// doubling, up to `max`, jittered (defaults 100 ms and 5 s).
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

    /// Claims and runs jobs until `shutdown` resolves; then stops claiming (a claim in
    /// flight may still answer for a moment; what it hands over is given back), lets
    /// running handlers finish within the grace period, gives back what still runs, and
    /// returns once the last settlements are confirmed: within the grace period plus
    /// [`SHUTDOWN_MARGIN`](crate::SHUTDOWN_MARGIN), whatever the host does.
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

        // Bounded: when the host cannot take settlements, finished attempts wait to hand
        // theirs off and keep their slots, so the worker stops claiming more work.
        let (settle_tx, settle_rx) =
            mpsc::channel((self.concurrency * 4).clamp(1, settler::MAX_BATCH));
        let mut settling = tokio::spawn(settler::run(
            self.host.clone(),
            settle_rx,
            self.settle_window,
        ));
        let shared = Arc::new(Shared {
            lease: self.host.lease(),
            host: self.host.clone(),
            handlers: self.handlers,
            settle: settle_tx,
            outbox: Outbox::default(),
            running: Mutex::new(HashMap::new()),
            shutdown: shutdown.clone(),
            #[cfg(test)]
            hold_before_settle: self.hold_before_settle,
        });
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut backoff = Backoff::new(self.reconnect_min, self.reconnect_max);
        // Jobs a claim handed over as shutdown began: given back, never started.
        let mut late = Vec::new();
        // When shutdown began, if the loop noticed it late (waiting for a claim's answer).
        let mut began = None;
        // Settlements sent with a claim that shutdown dropped unanswered: sent again.
        let mut unanswered = Vec::new();

        loop {
            // Reap finished attempts so the set does not grow.
            while tasks.try_join_next().is_some() {}
            // The settlements of jobs that end while this loop gathers slots go with its claim.
            shared.outbox.open();
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
                let until = Instant::now() + self.settle_window;
                while permits.len() < self.concurrency.min(MAX_CLAIM) {
                    match tokio::time::timeout_at(until, slots.clone().acquire_owned()).await {
                        Ok(Ok(p)) => permits.push(p),
                        Ok(Err(_)) | Err(_) => break,
                    }
                }
            }
            let carried = shared.outbox.close();
            let max = u32::try_from(permits.len()).unwrap_or(1);
            let asked = Instant::now();
            // A claim that carries settlements does not wait for work, so that their answers
            // (and the end of their heartbeats) come now; with no job ready, the next one waits.
            let wait = if carried.is_empty() {
                self.poll_wait
            } else {
                Duration::ZERO
            };
            let settlements = carried.iter().map(|p| p.settlement.clone()).collect();
            let claim = self
                .host
                .settle_and_claim(settlements, &queue, &kinds, max, wait);
            tokio::pin!(claim);
            let claimed = tokio::select! {
                // An answer that is here is taken, even when shutdown began meanwhile.
                biased;
                c = &mut claim => c,
                _ = shutdown.cancelled() => {
                    began = Some(Instant::now());
                    match tokio::time::timeout(CLAIM_DRAIN, &mut claim).await {
                        Ok(c) => c,
                        // Still waiting for work: dropped.
                        Err(_) => {
                            unanswered = carried;
                            break;
                        }
                    }
                }
            };
            let carried_some = !carried.is_empty();
            match claimed {
                Ok(SettledAndClaimed {
                    settled,
                    claimed: mut jobs,
                }) => {
                    if shutdown.is_cancelled() {
                        late = jobs;
                        settle_answered(&shared, carried, settled).await;
                        break;
                    }
                    let extra = jobs.split_off(jobs.len().min(permits.len()));
                    if !extra.is_empty() {
                        give_back_extra(&self.host, extra, max);
                    }
                    let empty = jobs.is_empty();
                    for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
                        start(&shared, &mut tasks, job, permit);
                    }
                    // After the jobs started (their leases and heartbeats with them): handing
                    // settlements to the settler may wait while it is backed up.
                    settle_answered(&shared, carried, settled).await;
                    let early = self.poll_wait.is_zero() || asked.elapsed() < self.poll_wait;
                    if empty && early && !carried_some {
                        // No job, and no long wait for one (a host that does not wait, or
                        // one that is stopping): pause rather than ask again at once.
                        drop(permits);
                        let delay = backoff.next_delay();
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.cancelled() => break,
                        }
                    } else {
                        backoff.reset();
                    }
                }
                Err(e) => {
                    drop(permits);
                    // Nothing is known of them: the settler sends them again.
                    for p in carried {
                        shared.to_settler(p).await;
                    }
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

        for p in unanswered.into_iter().chain(shared.outbox.close()) {
            shared.to_settler(p).await;
        }
        let began = began.unwrap_or_else(Instant::now);
        let report = wind_down(&shared, &mut tasks, late, self.grace, began).await;
        // The last settlements: the settler ends once every attempt's sender is gone and
        // what it holds is settled, or is stopped at the shutdown's deadline.
        drop(shared);
        let deadline = crate::shutdown::deadline(began, self.grace);
        if tokio::time::timeout_at(deadline, &mut settling)
            .await
            .is_err()
        {
            tracing::warn!("settlements not confirmed by the shutdown deadline were dropped; their jobs run again when their leases lapse");
            settling.abort();
        }
        Ok(report)
    }

    /// Pauses the attempt `id` between its handler's end and its settlement until `hold`
    /// resolves: a test's way to stage a race with shutdown.
    #[cfg(test)]
    pub(crate) fn hold_before_settle(mut self, hold: crate::attempt::Hold) -> Self {
        self.hold_before_settle = Some(hold);
        self
    }
}

/// Deals with the host's answers to the settlements a claim carried: what it could not
/// take now, or did not answer, goes to the settler to be sent again.
async fn settle_answered(
    shared: &Shared,
    carried: Vec<settler::Pending>,
    settled: Vec<Result<(), HostError>>,
) {
    for p in settler::to_send_again(carried, settled) {
        shared.to_settler(p).await;
    }
}

/// Gives back jobs a host handed over beyond the `max` a claim asked for: no slot is free
/// to run them, and holding them would only make them wait for their leases to lapse.
fn give_back_extra(host: &Arc<dyn JobHost>, extra: Vec<HostedJob>, max: u32) {
    tracing::warn!(
        asked = max,
        extra = extra.len(),
        "the host handed over more jobs than the claim asked for; giving the extra back"
    );
    for job in extra {
        let host = host.clone();
        tokio::spawn(async move {
            let id = job.job.id;
            if let Err(e) = host.release(id, job.lease_token).await {
                tracing::warn!(job = %id, error = %e, "could not give an extra job back; it runs again when its lease lapses");
            }
        });
    }
}

#[cfg(test)]
mod tests;
