//! Engine settings.

use std::time::Duration;

use errand_core::RetryPolicy;

/// How the engine behaves; the defaults suit most deployments.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Backoff for failures that name no delay.
    pub retry_policy: RetryPolicy,
    /// How long an idempotency key deduplicates enqueues.
    pub idempotency_window: Duration,
    /// How often expired leases and timed-out attempts are looked for. Half a second keeps
    /// a crashed worker's jobs waiting at most that long past their lease.
    pub rescue_interval: Duration,
    /// How often due scheduled jobs are made available: the precision of `run_at`.
    pub promote_interval: Duration,
    /// How often schedules are checked for due slots: the bound on how late a slot fires
    /// (plus one store round trip). 20 ms keeps firing lateness well under 50 ms.
    pub schedule_pass_interval: Duration,
    /// How long before its slot the job of an `overlap: allow` schedule is written, as a
    /// scheduled job that starts at the slot: a burst of slots costs its writes before it
    /// comes, so jobs start on time however many schedules share a slot. Changing, pausing
    /// or deleting the schedule takes back jobs of slots still to come. Zero writes each job
    /// at its slot.
    pub schedule_lead: Duration,
    /// Succeeded and cancelled jobs are deleted this long after they finished.
    pub retention: Duration,
    /// Dead jobs are deleted this long after they died (kept longer: someone may want to
    /// inspect or requeue them).
    pub dead_retention: Duration,
    /// How often the cleaner looks for jobs past their retention.
    pub prune_interval: Duration,
    /// A continuous instance's record not renewed for this long belongs to a node that
    /// died, and the cleaner deletes it. Runners renew their records well within it.
    pub instance_stale_after: Duration,
    /// A waiting claim re-checks the store at least this often, in case a wake-up was
    /// missed (another process wrote to the store).
    pub claim_recheck: Duration,
    /// How often the event tail reads the log when this node wrote nothing: how late events
    /// of other nodes reach this node's streams and waiters. One query per node.
    pub event_poll: Duration,
    /// Events the live feed holds for streams; a stream that falls this far behind (a slow
    /// or stuck consumer) is cut off and resumes by id.
    pub event_buffer: usize,
    /// Events older than this are pruned from the log (a stream resuming from before them
    /// is told it missed some).
    pub event_retention: Duration,
    /// The log keeps at most this many events, whatever their age.
    pub event_retention_max: u64,
    /// How often the log is pruned.
    pub event_prune_interval: Duration,
    /// A completion whose result's JSON is longer than this fails the job instead.
    pub max_result_bytes: usize,
    /// How often the workflow supervisor asks the store for the soonest step deadline when
    /// this node heard of none sooner: how late (at most) another node's step deadline is
    /// acted on. This node's own steps are acted on at their deadline (passes run at least
    /// 100 ms apart, or this far apart when it is shorter).
    pub supervise_interval: Duration,
    /// How many store calls of claims (or of small enqueues) for one queue run at once before
    /// the requests arriving meanwhile wait to go together in one call; `None` takes the
    /// store's choice
    /// ([`Store::combined_calls_at_once`](errand_store::Store::combined_calls_at_once)).
    pub combined_calls_at_once: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            retry_policy: RetryPolicy::default(),
            idempotency_window: Duration::from_millis(
                errand_core::limits::DEFAULT_IDEMPOTENCY_WINDOW_MS.unsigned_abs(),
            ),
            rescue_interval: Duration::from_millis(500),
            promote_interval: Duration::from_millis(100),
            claim_recheck: Duration::from_secs(1),
            schedule_pass_interval: Duration::from_millis(20),
            schedule_lead: Duration::from_millis(500),
            retention: Duration::from_secs(7 * 24 * 3600),
            dead_retention: Duration::from_secs(30 * 24 * 3600),
            prune_interval: Duration::from_secs(60),
            instance_stale_after: Duration::from_secs(300),
            event_poll: Duration::from_millis(100),
            event_buffer: 4096,
            event_retention: Duration::from_secs(24 * 3600),
            event_retention_max: 1_000_000,
            event_prune_interval: Duration::from_secs(60),
            max_result_bytes: 1024 * 1024,
            supervise_interval: Duration::from_secs(1),
            combined_calls_at_once: None,
        }
    }
}
