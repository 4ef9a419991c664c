//! Bounds on what a job may carry. Stores and the API check against the same numbers.

/// How long an idempotency key deduplicates by default: a day covers client retries and
/// most replays of a queue of requests.
pub const DEFAULT_IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Attempts a job gets when it names none: with the default backoff they span about a day.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;
/// More attempts than this is a configuration mistake, not a retry policy.
pub const MAX_MAX_ATTEMPTS: u32 = 10_000;
/// Priorities run from -1000 to 1000; higher runs first.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;
/// Tags per job: enough to label, few enough to index.
pub const MAX_TAGS: usize = 32;
/// Characters per tag or idempotency key.
pub const MAX_LABEL_LEN: usize = 255;
/// Shortest lease a worker may ask for; shorter would expire between heartbeats.
pub const MIN_LEASE_MS: u64 = 100;
/// Longest lease: a worker that needs more heartbeats.
pub const MAX_LEASE_MS: u64 = 24 * 3600 * 1000;
/// Lease a claim gets when it names none: long enough for most jobs to finish without a
/// heartbeat, short enough that a crashed worker's job is back within half a minute.
pub const DEFAULT_LEASE_MS: u64 = 30_000;
/// Jobs one claim may take: a batch that amortises the round trip, yet settles in one
/// transaction of bounded size.
pub const MAX_CLAIM: u32 = 1000;
/// Longest long-poll of a claim or a job wait: under the idle timeouts of common proxies
/// and load balancers (60 s and up), so a poll is answered before one cuts it.
pub const MAX_WAIT_MS: u64 = 60_000;
/// How long the slot ledger remembers which schedule slots ran: a week of an every-second
/// schedule is 604,800 rows, and a week covers a long weekend's outage and its backfill.
pub const SLOT_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;
/// Furthest back a backfill or a catch-up window reaches: the ledger's retention less an
/// hour, so any slot they look at still has its ledger row, even while the cleaner prunes
/// at the edge, and none can run twice.
pub const MAX_SLOT_REACH_MS: u64 = SLOT_RETENTION_MS - 3600 * 1000;
/// Jobs in one batch enqueue: one all-or-nothing transaction of this size commits in well
/// under a second on either store, and its body fits the default request-size limit.
pub const MAX_BATCH: usize = 10_000;
/// Longest `jitter` of a schedule: spreading one slot's job over more than a day is a
/// mistake (the job would run after slots that come later), not a load-spreading policy.
/// An interval schedule's jitter is also at most its interval.
pub const MAX_JITTER_MS: u64 = 24 * 3600 * 1000;
/// How far ahead a cron schedule's first slot may be: ten years covers every real
/// calendar pattern (29 February comes every four years, at most eight apart); a pattern
/// that fires later than that, or never (`0 0 30 2 *`), is refused as a mistake.
pub const FIRST_SLOT_HORIZON_DAYS: i64 = 10 * 366;
