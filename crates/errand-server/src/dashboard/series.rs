//! The overview's time series: a small in-memory sampler fed by the event feed, keeping
//! 10-second buckets for the last hour, served as JSON (`GET /ui/series`) to charts.js.
//!
//! Per bucket: jobs enqueued, succeeded, failed (an attempt failed, a retry will come) and
//! dead, and two latencies as percentiles: **wait**, from enqueue to the start of the first
//! attempt (read from the job id, a UUIDv7 that holds its enqueue time; it includes any
//! delay the job was enqueued with), and **run**, from an attempt's start to its end (both
//! seen by this sampler). The feed is cluster-wide, so counts cover every node's jobs; but
//! the buckets live in this process: they start empty when the node starts, and another
//! node's dashboard may show a slightly different hour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use errand_core::{Event, EventType, JobId};
use jiff::Timestamp;
use serde::Serialize;

use super::Dashboard;

/// Width of a bucket: fine enough to see a burst, few enough (360 an hour) that the JSON
/// stays a few kilobytes.
pub(crate) const BUCKET_SECS: i64 = 10;
/// Buckets kept: one hour.
pub(crate) const BUCKETS: usize = 360;
/// Attempt starts remembered while waiting for their end, so a run time can be measured.
/// Past it new starts are not remembered (their run times are not sampled) until old ones
/// end or age out: bounded memory whatever the throughput.
const MAX_RUNNING: usize = 100_000;
/// Latency histogram bins: bin `i` holds values up to `1.25^i` ms, so 128 bins reach
/// far beyond a day with each step 25 % wider than the last (the percentiles shown are
/// within 25 % of the truth).
const BINS: usize = 128;
const BIN_GROWTH: f64 = 1.25;

/// A latency histogram.
#[derive(Clone)]
struct Histogram(Box<[u32; BINS]>);

impl Histogram {
    fn new() -> Self {
        Self(Box::new([0; BINS]))
    }

    fn bin(ms: u64) -> usize {
        if ms <= 1 {
            return 0;
        }
        let i = ((ms as f64).ln() / BIN_GROWTH.ln()).ceil() as usize;
        i.min(BINS - 1)
    }

    fn record(&mut self, ms: u64) {
        let b = Self::bin(ms);
        self.0[b] = self.0[b].saturating_add(1);
    }

    /// The upper bound of the bin holding the `q` quantile, in milliseconds.
    fn quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.0.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &n) in self.0.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Some(BIN_GROWTH.powi(i as i32).round() as u64);
            }
        }
        None
    }
}

/// One bucket's counts.
#[derive(Clone)]
struct Bucket {
    /// Its start, in seconds since the epoch (a multiple of [`BUCKET_SECS`]).
    start: i64,
    enqueued: u64,
    succeeded: u64,
    failed: u64,
    dead: u64,
    wait: Option<Histogram>,
    run: Option<Histogram>,
}

impl Bucket {
    fn empty(start: i64) -> Self {
        Self {
            start,
            enqueued: 0,
            succeeded: 0,
            failed: 0,
            dead: 0,
            wait: None,
            run: None,
        }
    }
}

struct Inner {
    /// Ring of buckets by `(start / BUCKET_SECS) % BUCKETS`; a slot whose start is not the
    /// one asked for is stale and counts as empty.
    ring: Vec<Bucket>,
    /// Attempt starts not yet ended: job → start (ms).
    running: HashMap<JobId, i64>,
}

/// The sampler.
pub(crate) struct Series {
    inner: Mutex<Inner>,
    /// When it started: buckets before it are unknown, not zero.
    since: i64,
}

/// What `GET /ui/series` answers, in uPlot's column order.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct SeriesJson {
    /// Seconds per bucket.
    pub(crate) bucket_secs: i64,
    /// When this node's sampler started (seconds since the epoch).
    pub(crate) since: i64,
    /// Bucket starts (seconds since the epoch), oldest first.
    pub(crate) t: Vec<i64>,
    /// Jobs enqueued per bucket (`null` before the sampler started).
    pub(crate) enqueued: Vec<Option<u64>>,
    /// Jobs succeeded.
    pub(crate) succeeded: Vec<Option<u64>>,
    /// Attempts failed with a retry to come.
    pub(crate) failed: Vec<Option<u64>>,
    /// Jobs dead.
    pub(crate) dead: Vec<Option<u64>>,
    /// Median wait (enqueue to first start), ms.
    pub(crate) wait_p50: Vec<Option<u64>>,
    /// 95th percentile wait, ms.
    pub(crate) wait_p95: Vec<Option<u64>>,
    /// Median run time, ms.
    pub(crate) run_p50: Vec<Option<u64>>,
    /// 95th percentile run time, ms.
    pub(crate) run_p95: Vec<Option<u64>>,
}

fn bucket_start(ms: i64) -> i64 {
    ms.div_euclid(1000).div_euclid(BUCKET_SECS) * BUCKET_SECS
}

fn slot(start: i64) -> usize {
    (start / BUCKET_SECS).rem_euclid(BUCKETS as i64) as usize
}

impl Series {
    /// An empty sampler started at `now`.
    pub(crate) fn new(now: Timestamp) -> Self {
        Self {
            inner: Mutex::new(Inner {
                ring: vec![Bucket::empty(i64::MIN); BUCKETS],
                running: HashMap::new(),
            }),
            since: bucket_start(now.as_millisecond()),
        }
    }

    /// Counts `event` in the bucket of its time.
    pub(crate) fn record(&self, event: &Event) {
        let Some(job) = &event.body.job else { return };
        let at = event.body.at.as_millisecond();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let start = bucket_start(at);
        let i = slot(start);
        if inner.ring[i].start != start {
            if inner.ring[i].start > start {
                // Older than the hour kept.
                return;
            }
            inner.ring[i] = Bucket::empty(start);
        }
        match event.body.event_type {
            EventType::JobEnqueued => inner.ring[i].enqueued += 1,
            EventType::JobStarted => {
                if job.attempt == 1 {
                    if let Some(wait) = enqueued_ms(job.id).map(|e| at - e) {
                        inner.ring[i]
                            .wait
                            .get_or_insert_with(Histogram::new)
                            .record(u64::try_from(wait).unwrap_or(0));
                    }
                }
                if inner.running.len() >= MAX_RUNNING {
                    let horizon = at - (BUCKETS as i64) * BUCKET_SECS * 1000;
                    inner.running.retain(|_, started| *started > horizon);
                }
                if inner.running.len() < MAX_RUNNING {
                    inner.running.insert(job.id, at);
                }
            }
            ty @ (EventType::JobSucceeded | EventType::JobFailed | EventType::JobDead) => {
                let bucket = &mut inner.ring[i];
                match ty {
                    EventType::JobSucceeded => bucket.succeeded += 1,
                    EventType::JobFailed => bucket.failed += 1,
                    _ => bucket.dead += 1,
                }
                if let Some(started) = inner.running.remove(&job.id) {
                    let run = u64::try_from(at - started).unwrap_or(0);
                    inner.ring[i]
                        .run
                        .get_or_insert_with(Histogram::new)
                        .record(run);
                }
            }
            EventType::JobCancelled => {
                inner.running.remove(&job.id);
            }
            _ => {}
        }
    }

    /// The last hour up to `now`, oldest bucket first.
    pub(crate) fn snapshot(&self, now: Timestamp) -> SeriesJson {
        let end = bucket_start(now.as_millisecond());
        let first = end - (BUCKETS as i64 - 1) * BUCKET_SECS;
        let mut out = SeriesJson {
            bucket_secs: BUCKET_SECS,
            since: self.since,
            t: Vec::with_capacity(BUCKETS),
            enqueued: Vec::with_capacity(BUCKETS),
            succeeded: Vec::with_capacity(BUCKETS),
            failed: Vec::with_capacity(BUCKETS),
            dead: Vec::with_capacity(BUCKETS),
            wait_p50: Vec::with_capacity(BUCKETS),
            wait_p95: Vec::with_capacity(BUCKETS),
            run_p50: Vec::with_capacity(BUCKETS),
            run_p95: Vec::with_capacity(BUCKETS),
        };
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        for k in 0..BUCKETS as i64 {
            let start = first + k * BUCKET_SECS;
            out.t.push(start);
            let known = start >= self.since;
            let b = &inner.ring[slot(start)];
            let b = (b.start == start).then_some(b);
            let n = |f: fn(&Bucket) -> u64| known.then(|| b.map_or(0, f));
            out.enqueued.push(n(|b| b.enqueued));
            out.succeeded.push(n(|b| b.succeeded));
            out.failed.push(n(|b| b.failed));
            out.dead.push(n(|b| b.dead));
            let q = |h: Option<&Histogram>, q: f64| h.and_then(|h| h.quantile(q));
            out.wait_p50.push(q(b.and_then(|b| b.wait.as_ref()), 0.5));
            out.wait_p95.push(q(b.and_then(|b| b.wait.as_ref()), 0.95));
            out.run_p50.push(q(b.and_then(|b| b.run.as_ref()), 0.5));
            out.run_p95.push(q(b.and_then(|b| b.run.as_ref()), 0.95));
        }
        out
    }
}

/// When a job was enqueued, from its UUIDv7 id (milliseconds).
fn enqueued_ms(id: JobId) -> Option<i64> {
    let (secs, nanos) = id.0.get_timestamp()?.to_unix();
    i64::try_from(secs)
        .ok()
        .map(|s| s * 1000 + i64::from(nanos / 1_000_000))
}

/// `GET /ui/series`: the last hour of this node's sampler, as JSON.
pub(crate) async fn json(Extension(dash): Extension<Arc<Dashboard>>) -> Response {
    let mut response = Json(dash.series.snapshot(Timestamp::now())).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_core::{EventBody, EventId, JobKind, JobSnapshot, JobState, QueueName};

    fn event(ty: EventType, id: JobId, attempt: u32, at_ms: i64) -> Event {
        Event {
            id: EventId::default(),
            body: EventBody {
                event_type: ty,
                at: Timestamp::from_millisecond(at_ms).unwrap(),
                job: Some(JobSnapshot {
                    id,
                    queue: QueueName::parse("q").unwrap(),
                    kind: JobKind::parse("k").unwrap(),
                    state: JobState::Running,
                    attempt,
                    max_attempts: 3,
                    tags: vec![],
                    correlation_id: None,
                    schedule: None,
                    progress: None,
                    result: None,
                    result_bytes: None,
                    error: None,
                }),
                schedule: None,
                batch: None,
            },
        }
    }

    #[test]
    fn events_land_in_their_buckets_with_run_and_wait_times() {
        let t0 = Timestamp::now();
        let now = t0.as_millisecond();
        let s = Series::new(t0);
        let id = JobId::new();
        let enq = enqueued_ms(id).unwrap();
        s.record(&event(EventType::JobEnqueued, id, 0, enq));
        s.record(&event(EventType::JobStarted, id, 1, enq + 2_000));
        s.record(&event(EventType::JobSucceeded, id, 1, enq + 2_500));
        let other = JobId::new();
        s.record(&event(EventType::JobFailed, other, 1, now));
        s.record(&event(EventType::JobDead, other, 2, now));
        let snap = s.snapshot(Timestamp::from_millisecond(now + 10_000).unwrap());
        assert_eq!(snap.t.len(), BUCKETS);
        let sum = |v: &Vec<Option<u64>>| v.iter().flatten().sum::<u64>();
        assert_eq!(sum(&snap.enqueued), 1);
        assert_eq!(sum(&snap.succeeded), 1);
        assert_eq!(sum(&snap.failed), 1);
        assert_eq!(sum(&snap.dead), 1);
        let wait = snap.wait_p50.iter().flatten().next().copied().unwrap();
        let run = snap.run_p95.iter().flatten().next().copied().unwrap();
        // Within a histogram step (25 %) of 2 s and 500 ms.
        assert!((1_600..=2_500).contains(&wait), "{wait}");
        assert!((400..=625).contains(&run), "{run}");
        // Buckets before the sampler started are unknown, not zero.
        assert_eq!(snap.enqueued[0], None);
        assert!(snap.enqueued.last().unwrap().is_some());
    }

    #[test]
    fn an_hour_later_old_buckets_are_gone() {
        let t0 = Timestamp::now();
        let s = Series::new(t0);
        s.record(&event(
            EventType::JobEnqueued,
            JobId::new(),
            0,
            t0.as_millisecond(),
        ));
        let later = Timestamp::from_millisecond(t0.as_millisecond() + 3_700_000).unwrap();
        let snap = s.snapshot(later);
        assert_eq!(snap.enqueued.iter().flatten().sum::<u64>(), 0);
        // Reused slots start from zero.
        s.record(&event(
            EventType::JobEnqueued,
            JobId::new(),
            0,
            later.as_millisecond(),
        ));
        assert_eq!(s.snapshot(later).enqueued.iter().flatten().sum::<u64>(), 1);
    }

    #[test]
    fn quantiles_come_from_the_right_bins() {
        let mut h = Histogram::new();
        for ms in [10, 10, 10, 10, 10, 10, 10, 10, 10, 1000] {
            h.record(ms);
        }
        let p50 = h.quantile(0.5).unwrap();
        let p95 = h.quantile(0.95).unwrap();
        assert!((10..=13).contains(&p50), "{p50}");
        assert!((1000..=1250).contains(&p95), "{p95}");
        assert_eq!(Histogram::new().quantile(0.5), None);
    }
}
