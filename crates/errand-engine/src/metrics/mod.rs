//! What this node did, as Prometheus metrics: jobs enqueued, started and ended, claims,
//! latencies, store calls, webhook deliveries and schedule firing.
//!
//! Every counter and histogram is node-local: each node counts what it did itself, so
//! Prometheus sums them across nodes without counting anything twice. The queue figures
//! (jobs per state, the oldest ready job's age) are the store's and the same on every node;
//! they are read at scrape time ([`scrape`]) from the store's cheap per-queue counters.
//! docs/observability.md lists every metric.
//!
//! Label values are bounded: at most [`QUEUE_LABEL_CAP`] queues and [`KIND_LABEL_CAP`]
//! kinds keep their own names, later ones count under [`OVERFLOW_LABEL`], and at most
//! [`PAIR_LABEL_CAP`] (queue, kind) pairs have their own job counters; job ids, workers
//! and payloads are never labels.

mod label_cap;
pub(crate) mod scrape;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use errand_core::{Delivery, DeliveryState, Job, JobKind, JobState, QueueName};
use errand_store::{ClaimedJob, InsertedJob, StoreError};
use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

pub use label_cap::OVERFLOW_LABEL;
use label_cap::{LabelCap, PairCap};

/// Queues that keep their own label value on this node. Far above what deployments name
/// (tens of queues), low enough that the per-queue histograms stay a few thousand series.
pub const QUEUE_LABEL_CAP: usize = 200;

/// Kinds that keep their own label value on this node; see [`QUEUE_LABEL_CAP`].
pub const KIND_LABEL_CAP: usize = 200;

/// (queue, kind) pairs that keep their own series on the job counters; later pairs are
/// counted under kind `__other__` of their queue. Ten job counters × 2,000 pairs is 20,000
/// series at most, where 200 × 200 names would allow 400,000; real deployments use tens.
pub const PAIR_LABEL_CAP: usize = 2_000;

/// Job latencies (waiting, running, enqueue to end): from 5 ms, what a wake-up costs,
/// to an hour, beyond which a job's time is a matter for its own logs.
const JOB_SECONDS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Enqueue to final state, retries included: the job buckets, then on to two days. With
/// the default backoff (1 s doubling to 1 h) 25 attempts span about a day, and a job that
/// succeeds on its last retry must land in a bucket of its own, not in `+Inf`.
const SETTLE_SECONDS: [f64; 21] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 10_800.0, 21_600.0, 43_200.0, 86_400.0, 172_800.0,
];

/// Store calls: from half a millisecond (a SQLite read) to 5 s (a call that waited for a
/// pooled connection or a lock; past that the store is in trouble anyway).
const STORE_SECONDS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Jobs per claim that got any: 1 to the largest claim allowed
/// ([`errand_core::limits::MAX_CLAIM`]).
const CLAIM_SIZES: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// Requests per store call of the combiners: 1 (alone) to the insert cap (256 jobs, so at
/// most 256 requests) and the claim cap.
const COMBINED_SIZES: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Schedule lateness: a pass runs every 20 ms, so a healthy slot fires within tens of
/// milliseconds; the top buckets catch a node that was down or a scheduler that fell behind.
const LATENESS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn job_seconds() -> Histogram {
    Histogram::new(JOB_SECONDS)
}

fn settle_seconds() -> Histogram {
    Histogram::new(SETTLE_SECONDS)
}

fn store_seconds() -> Histogram {
    Histogram::new(STORE_SECONDS)
}

fn claim_sizes() -> Histogram {
    Histogram::new(CLAIM_SIZES)
}

fn combined_sizes() -> Histogram {
    Histogram::new(COMBINED_SIZES)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: Arc<str>,
    kind: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueOutcome {
    queue: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClaimLabels {
    queue: Arc<str>,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    target: &'static str,
    outcome: &'static str,
}

/// The metrics of this node: families that the engine's operations update and that the
/// server encodes for `GET /metrics`.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    queues: LabelCap,
    kinds: LabelCap,
    pairs: PairCap,
    enqueued: Family<JobLabels, Counter>,
    started: Family<JobLabels, Counter>,
    succeeded: Family<JobLabels, Counter>,
    failed: Family<JobLabels, Counter>,
    dead: Family<JobLabels, Counter>,
    cancelled: Family<JobLabels, Counter>,
    rescued: Family<JobLabels, Counter>,
    retried: Family<JobLabels, Counter>,
    dead_requeued: Counter,
    claims: Family<ClaimLabels, Counter>,
    claim_size: HistogramFamily<QueueLabel>,
    wait_seconds: HistogramFamily<QueueLabel>,
    run_seconds: HistogramFamily<QueueOutcome>,
    end_seconds: HistogramFamily<QueueOutcome>,
    store_seconds: HistogramFamily<OpLabel>,
    store_errors: Family<OpLabel, Counter>,
    combined: HistogramFamily<OpLabel>,
    deliveries: Family<DeliveryLabels, Counter>,
    schedule_fired: Counter,
    schedule_lateness: Histogram,
    scheduler_last_pass: Gauge<f64, AtomicU64>,
    schedule_overdue: Gauge<f64, AtomicU64>,
    auth_refused: Family<RefusalLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family, registered under its `errand_` name, all at zero.
    pub(crate) fn new() -> Self {
        let m = Self {
            registry: Registry::default(),
            queues: LabelCap::new(QUEUE_LABEL_CAP),
            kinds: LabelCap::new(KIND_LABEL_CAP),
            pairs: PairCap::new(PAIR_LABEL_CAP),
            enqueued: Family::default(),
            started: Family::default(),
            succeeded: Family::default(),
            failed: Family::default(),
            dead: Family::default(),
            cancelled: Family::default(),
            rescued: Family::default(),
            retried: Family::default(),
            dead_requeued: Counter::default(),
            claims: Family::default(),
            claim_size: Family::new_with_constructor(claim_sizes),
            wait_seconds: Family::new_with_constructor(job_seconds),
            run_seconds: Family::new_with_constructor(job_seconds),
            end_seconds: Family::new_with_constructor(settle_seconds),
            store_seconds: Family::new_with_constructor(store_seconds),
            store_errors: Family::default(),
            combined: Family::new_with_constructor(combined_sizes),
            deliveries: Family::default(),
            schedule_fired: Counter::default(),
            schedule_lateness: Histogram::new(LATENESS_SECONDS),
            scheduler_last_pass: Gauge::default(),
            schedule_overdue: Gauge::default(),
            auth_refused: Family::default(),
        };
        m.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        // Counters get `_total` appended by the encoder.
        r.register(
            "errand_http_auth_refused",
            "Requests refused for a missing or bad token (reason missing, invalid), a token without the scope or queue (forbidden), or a token over its request rate or long polls (limited)",
            self.auth_refused.clone(),
        );
        r.register(
            "errand_jobs_enqueued",
            "Jobs this node stored new (idempotent repeats not counted): enqueues, batches, schedule fires",
            self.enqueued.clone(),
        );
        r.register(
            "errand_jobs_started",
            "Attempts this node handed to workers (jobs claimed)",
            self.started.clone(),
        );
        r.register(
            "errand_jobs_succeeded",
            "Attempts settled as succeeded on this node",
            self.succeeded.clone(),
        );
        r.register(
            "errand_jobs_failed",
            "Attempts settled as failed on this node (retried or dead)",
            self.failed.clone(),
        );
        r.register(
            "errand_jobs_dead",
            "Jobs this node moved to dead: out of attempts, failed for good, or rescued with no attempt left",
            self.dead.clone(),
        );
        r.register(
            "errand_jobs_cancelled",
            "Jobs this node cancelled (API cancel, a schedule's replace policy, jobs written ahead that a schedule's pause, replace or delete took back)",
            self.cancelled.clone(),
        );
        r.register(
            "errand_jobs_rescued",
            "Attempts this node's rescuer ended because their lease lapsed or they outran their timeout",
            self.rescued.clone(),
        );
        r.register(
            "errand_jobs_retried",
            "Jobs this node made ready again by an explicit retry",
            self.retried.clone(),
        );
        r.register(
            "errand_dead_requeued",
            "Dead jobs this node requeued in bulk (POST /v1/dead/requeue)",
            self.dead_requeued.clone(),
        );
        r.register(
            "errand_claims",
            "Store claims this node made, by whether they got jobs (`jobs`) or none (`empty`)",
            self.claims.clone(),
        );
        r.register(
            "errand_claim_size",
            "Jobs per claim that got any",
            self.claim_size.clone(),
        );
        r.register(
            "errand_job_wait_seconds",
            "Enqueue to start: from when an attempt was due (its run_at) to its claim",
            self.wait_seconds.clone(),
        );
        r.register(
            "errand_job_run_seconds",
            "Claim to settle of one attempt, by outcome (succeeded, failed)",
            self.run_seconds.clone(),
        );
        r.register(
            "errand_job_settle_seconds",
            "Enqueue to final state of jobs that ended on this node, by outcome (succeeded, dead, cancelled)",
            self.end_seconds.clone(),
        );
        r.register(
            "errand_store_operation_seconds",
            "Time of this node's store calls, by operation",
            self.store_seconds.clone(),
        );
        r.register(
            "errand_store_errors",
            "Store calls of this node that failed, by operation (refusals such as not found included)",
            self.store_errors.clone(),
        );
        r.register(
            "errand_store_combined_requests",
            "Requests (workers' claim cycles, enqueues) that one store call of this node made together, by operation: 1 is a request alone; more waited for the call before theirs (PostgreSQL)",
            self.combined.clone(),
        );
        r.register(
            "errand_webhook_deliveries",
            "Webhook delivery attempts this node settled, by target (callback, subscription) and outcome (delivered, retrying, failed)",
            self.deliveries.clone(),
        );
        r.register(
            "errand_schedule_fired",
            "Jobs this node's scheduler passes fired for schedule slots",
            self.schedule_fired.clone(),
        );
        r.register(
            "errand_schedule_lateness_seconds",
            "Fire time minus slot time of the slots this node fired",
            self.schedule_lateness.clone(),
        );
        r.register(
            "errand_scheduler_last_pass_timestamp_seconds",
            "When this node's scheduler last completed a pass (Unix time; 0: never, or no scheduler role)",
            self.scheduler_last_pass.clone(),
        );
        r.register(
            "errand_schedule_overdue_seconds",
            "At this node's last scheduler pass, how far past its slot the most overdue due schedule was",
            self.schedule_overdue.clone(),
        );
        self
    }

    fn job_labels(&self, job: &Job) -> JobLabels {
        let queue = self.queues.label(job.queue.as_str());
        let kind = self.kinds.label(job.kind.as_str());
        let kind = if self.pairs.admit(&queue, &kind) {
            kind
        } else {
            self.kinds.overflow()
        };
        JobLabels { queue, kind }
    }

    fn queue_label(&self, queue: &str) -> QueueLabel {
        QueueLabel {
            queue: self.queues.label(queue),
        }
    }

    /// Times a store call under `op`, counting it as an error when it fails.
    pub(crate) async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let out = call.await;
        let label = OpLabel { op };
        self.store_seconds
            .get_or_create(&label)
            .observe(start.elapsed().as_secs_f64());
        if out.is_err() {
            self.store_errors.get_or_create(&label).inc();
        }
        out
    }

    /// A store call under `op` that made `requests` requests together.
    pub(crate) fn combined(&self, op: &'static str, requests: usize) {
        self.combined
            .get_or_create(&OpLabel { op })
            .observe(requests as f64);
    }

    /// An insert's new jobs (repeats of an idempotency key are not new).
    pub(crate) fn inserted(&self, out: &[InsertedJob]) {
        for r in out.iter().filter(|r| r.inserted) {
            self.enqueued.get_or_create(&self.job_labels(&r.job)).inc();
        }
    }

    /// A job stored new outside an insert (a schedule's fire, a workflow's step).
    pub(crate) fn enqueued(&self, queue: &QueueName, kind: &JobKind) {
        let labels = JobLabels {
            queue: self.queues.label(queue.as_str()),
            kind: self.kinds.label(kind.as_str()),
        };
        self.enqueued.get_or_create(&labels).inc();
    }

    /// One store claim on `queue` and the jobs it handed out.
    pub(crate) fn claimed(&self, queue: &str, jobs: &[ClaimedJob]) {
        let queue = self.queue_label(queue);
        let result = if jobs.is_empty() { "empty" } else { "jobs" };
        self.claims
            .get_or_create(&ClaimLabels {
                queue: queue.queue.clone(),
                result,
            })
            .inc();
        if jobs.is_empty() {
            return;
        }
        self.claim_size
            .get_or_create(&queue)
            .observe(jobs.len() as f64);
        let wait = self.wait_seconds.get_or_create_owned(&queue);
        for c in jobs {
            self.started.get_or_create(&self.job_labels(&c.job)).inc();
            if let Some(started) = c.job.started_at {
                wait.observe(seconds_between(c.job.run_at, started));
            }
        }
    }

    /// A job as an attempt's settlement left it.
    pub(crate) fn settled(&self, job: &Job) {
        let labels = self.job_labels(job);
        let outcome = match job.state {
            JobState::Succeeded => {
                self.succeeded.get_or_create(&labels).inc();
                "succeeded"
            }
            // Cancelled meanwhile: the attempt's settlement changed nothing of its state.
            JobState::Cancelled => return,
            state => {
                self.failed.get_or_create(&labels).inc();
                if state == JobState::Dead {
                    self.dead.get_or_create(&labels).inc();
                }
                "failed"
            }
        };
        if let Some(started) = job.started_at {
            self.run_seconds
                .get_or_create(&QueueOutcome {
                    queue: labels.queue.clone(),
                    outcome,
                })
                .observe(seconds_between(started, job.updated_at));
        }
        self.ended(&labels.queue, job);
    }

    /// A job whose lease lapsed or whose attempt outran its timeout, as the rescuer left it.
    pub(crate) fn rescued(&self, job: &Job) {
        let labels = self.job_labels(job);
        self.rescued.get_or_create(&labels).inc();
        if job.state == JobState::Dead {
            self.dead.get_or_create(&labels).inc();
        }
        self.ended(&labels.queue, job);
    }

    /// A job this node cancelled.
    pub(crate) fn cancelled(&self, job: &Job) {
        let labels = self.job_labels(job);
        self.cancelled.get_or_create(&labels).inc();
        self.ended(&labels.queue, job);
    }

    /// A job this node made ready again by an explicit retry.
    pub(crate) fn retried(&self, job: &Job) {
        self.retried.get_or_create(&self.job_labels(job)).inc();
    }

    /// Dead jobs requeued in bulk.
    pub(crate) fn dead_requeued(&self, n: u64) {
        self.dead_requeued.inc_by(n);
    }

    /// Enqueue to end, for a job that reached a final state.
    fn ended(&self, queue: &Arc<str>, job: &Job) {
        if !job.state.is_final() {
            return;
        }
        let end = job.finished_at.unwrap_or(job.updated_at);
        self.end_seconds
            .get_or_create(&QueueOutcome {
                queue: queue.clone(),
                outcome: job.state.as_str(),
            })
            .observe(seconds_between(job.created_at, end));
    }

    /// A webhook delivery as its attempt's settlement left it.
    pub(crate) fn delivery_settled(&self, delivery: &Delivery) {
        let target = if delivery.subscription.is_some() {
            "subscription"
        } else {
            "callback"
        };
        let outcome = match delivery.state {
            DeliveryState::Succeeded => "delivered",
            DeliveryState::Pending => "retrying",
            DeliveryState::Failed => "failed",
        };
        self.deliveries
            .get_or_create(&DeliveryLabels { target, outcome })
            .inc();
    }

    /// A job a scheduler pass fired for its slot.
    pub(crate) fn schedule_fired(&self, job: &Job) {
        self.schedule_fired.inc();
        if let Some(slot) = job.slot {
            self.schedule_lateness
                .observe(seconds_between(slot, job.created_at));
        }
    }

    /// A request refused by authentication (`missing`, `invalid`), authorisation
    /// (`forbidden`) or a token's abuse limits (`limited`); never labelled by token, so the metric tells nobody which exist.
    pub(crate) fn auth_refused(&self, reason: &'static str) {
        self.auth_refused
            .get_or_create(&RefusalLabel { reason })
            .inc();
    }

    /// A scheduler pass completed at `now`; the most overdue due schedule was `overdue`
    /// seconds past its slot.
    pub(crate) fn scheduler_pass(&self, now: Timestamp, overdue: f64) {
        self.scheduler_last_pass
            .set(now.as_millisecond() as f64 / 1000.0);
        self.schedule_overdue.set(overdue);
    }
}

/// Seconds from `from` to `to`; zero when the clock says `to` came first.
fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}
