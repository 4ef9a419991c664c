//! Lanes of requests waiting to go to the store together: the bookkeeping that the claim
//! and insert combiners share ([`crate::claim_combiner`], [`crate::insert_combiner`]).
//!
//! A request enters its lane; while fewer runners than the store takes at once
//! ([`Store::combined_calls_at_once`]) serve the lane, it starts one. A runner takes the
//! waiting requests as one batch, in arrival order, up to the caps and never two that share
//! a unique part (a job settled, an idempotency key): one waits for the next batch. Each
//! runner holds a [`RunnerPlace`] that gives its place back however it ends, so a lane is
//! never left waiting for a runner that is gone.
//!
//! [`Store::combined_calls_at_once`]: errand_store::Store::combined_calls_at_once

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

/// What a request adds to a batch.
pub(crate) trait Batchable {
    /// A part that may appear once per batch.
    type Unique: Eq + Hash;
    /// Jobs it adds (claimed or inserted).
    fn jobs(&self) -> u32;
    /// Other entries it adds (settlements).
    fn entries(&self) -> usize;
    /// Its parts that no other request of the batch may have.
    fn uniques(&self) -> Vec<Self::Unique>;
    /// Called as it joins a batch (a claim whose caller is gone asks for nothing).
    fn prepare(&mut self) {}
    /// Answers its caller with `error` instead of a store call's outcome.
    fn refuse(self, error: errand_store::StoreError);
}

/// A runner's work: makes `lane`'s batches with `run` until none waits. A batch of several
/// requests that `run` hands back failed for a fault one request's input may have caused,
/// and kept nothing: each of them is made again alone, side by side (as they would have
/// run had they come apart), rebuilt by `rebuild` from what `run` handed back and what
/// `keep` copied of it before the call (what the call spent). A single request's failure
/// is answered to it by `run`, never handed back.
pub(crate) async fn drain<L, T, K, R, Fut>(
    lanes: &Lanes<L, T>,
    lane: &L,
    caps: Caps,
    keep: impl Fn(&T) -> K,
    run: impl Fn(Vec<T>) -> Fut,
    rebuild: impl Fn(R, K) -> T,
) where
    L: Eq + Hash + Clone + std::fmt::Debug,
    T: Batchable,
    Fut: std::future::Future<Output = Result<(), Vec<R>>>,
{
    while let Some(batch) = lanes.next_batch(lane, caps) {
        let again: Vec<K> = if batch.len() > 1 {
            batch.iter().map(&keep).collect()
        } else {
            Vec::new()
        };
        if let Err(failed) = run(batch).await {
            let alone = failed
                .into_iter()
                .zip(again)
                .map(|(rest, kept)| run(vec![rebuild(rest, kept)]));
            futures_util::future::join_all(alone).await;
        }
    }
}

/// The most one batch carries; a single request may carry more and goes alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Jobs.
    pub(crate) jobs: u32,
    /// Other entries.
    pub(crate) entries: usize,
}

struct LaneState<T> {
    running: usize,
    waiting: VecDeque<T>,
}

impl<T> Default for LaneState<T> {
    fn default() -> Self {
        LaneState {
            running: 0,
            waiting: VecDeque::new(),
        }
    }
}

/// The lanes with requests waiting or under way.
pub(crate) struct Lanes<L, T> {
    lanes: Mutex<HashMap<L, LaneState<T>>>,
}

impl<L, T> Default for Lanes<L, T> {
    fn default() -> Self {
        Lanes {
            lanes: Mutex::new(HashMap::new()),
        }
    }
}

impl<L: Eq + Hash + Clone + std::fmt::Debug, T: Batchable> Lanes<L, T> {
    /// Queues `item` on its lane; true when the caller must start a runner for the lane
    /// (fewer than `runners` run).
    pub(crate) fn enter(&self, lane: &L, item: T, runners: usize) -> bool {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let state = lanes.entry(lane.clone()).or_default();
        state.waiting.push_back(item);
        if state.running < runners {
            state.running += 1;
            true
        } else {
            false
        }
    }

    /// The next batch of `lane`'s waiting requests, in arrival order: every one that fits
    /// `caps` and shares no unique part with another of the batch (such a request waits for
    /// the next batch). The first always goes. `None` ends the runner.
    pub(crate) fn next_batch(&self, lane: &L, caps: Caps) -> Option<Vec<T>> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let state = lanes.get_mut(lane)?;
        let mut batch: Vec<T> = Vec::new();
        let mut jobs = 0u32;
        let mut entries = 0usize;
        let mut seen: HashSet<T::Unique> = HashSet::new();
        let mut held = VecDeque::new();
        while let Some(mut item) = state.waiting.pop_front() {
            item.prepare();
            let uniques = item.uniques();
            let fits = batch.is_empty()
                || (jobs.saturating_add(item.jobs()) <= caps.jobs
                    && entries + item.entries() <= caps.entries
                    && !uniques.iter().any(|u| seen.contains(u)));
            if !fits {
                held.push_back(item);
                continue;
            }
            jobs = jobs.saturating_add(item.jobs());
            entries += item.entries();
            seen.extend(uniques);
            batch.push(item);
            if jobs >= caps.jobs || entries >= caps.entries {
                break;
            }
        }
        held.append(&mut state.waiting);
        state.waiting = held;
        if batch.is_empty() {
            state.running -= 1;
            if state.running == 0 {
                lanes.remove(lane);
            }
            return None;
        }
        Some(batch)
    }

    /// A runner of `lane` ended without [`next_batch`](Self::next_batch) ending it: it
    /// unwound (`panicking`: a bug panicked under it, 500) or its task was dropped (the
    /// runtime is shutting down, 503). Its place is given back; when no other runner is left,
    /// the requests still waiting hear that error, and the next request starts a new runner.
    /// `what` names the requests in the error (`"claim"`, `"enqueue"`).
    pub(crate) fn abandon(&self, lane: &L, panicking: bool, what: &str) {
        let left: Vec<T> = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let Some(state) = lanes.get_mut(lane) else {
                return;
            };
            state.running = state.running.saturating_sub(1);
            if state.running > 0 {
                return;
            }
            lanes
                .remove(lane)
                .map(|s| s.waiting.into())
                .unwrap_or_default()
        };
        let error = if panicking {
            tracing::error!(
                ?lane,
                "a {what} runner panicked; the requests waiting on it are answered with an error"
            );
            errand_store::StoreError::Internal(format!(
                "the {what}'s store call panicked (see the log)"
            ))
        } else {
            errand_store::StoreError::Unavailable(format!(
                "the {what}'s store call was cancelled: shutting down"
            ))
        };
        for item in left {
            item.refuse(error.clone());
        }
    }

    /// Runners and waiting requests of `lane`.
    #[cfg(test)]
    pub(crate) fn counts(&self, lane: &L) -> (usize, usize) {
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes
            .get(lane)
            .map_or((0, 0), |s| (s.running, s.waiting.len()))
    }
}

/// Whether a combined call that failed with `e` is made again request by request: only
/// for errors that roll the whole call back and that one request's own input can cause (a
/// refusal, a constraint, a lock conflict or deadlock the combination itself may have
/// made). A store that is unavailable, a corrupt answer or a bug is answered to every
/// request of the call at once: asking again one by one would only repeat it, and after an
/// answer that came back wrong the call may have been kept.
pub(crate) fn redo_alone(e: &errand_store::StoreError) -> bool {
    e.is_refusal() || matches!(e, errand_store::StoreError::ConstraintViolated(_))
}

/// The error a caller hears when its request's call ended without an answer: the engine
/// is stopping (503, try another node), or a bug panicked under the call (500).
pub(crate) fn unanswered(shutting_down: bool, what: &str) -> errand_store::StoreError {
    if shutting_down {
        errand_store::StoreError::Unavailable(format!(
            "the {what} was cut off: the server is stopping"
        ))
    } else {
        errand_store::StoreError::Internal(format!(
            "the {what} ended without an answer (its task panicked: see the log)"
        ))
    }
}

/// A runner's place in its lane, taken before the runner's task is spawned. Dropped
/// without [`ended`](Self::ended) (the runner unwound or was cancelled), it calls
/// `on_abnormal_end` with whether a panic is unwinding, which gives the place back.
pub(crate) struct RunnerPlace<F: FnOnce(bool)> {
    on_abnormal_end: Option<F>,
}

impl<F: FnOnce(bool)> RunnerPlace<F> {
    /// A place that calls `on_abnormal_end` unless the runner ends normally.
    pub(crate) fn new(on_abnormal_end: F) -> Self {
        RunnerPlace {
            on_abnormal_end: Some(on_abnormal_end),
        }
    }

    /// The runner ended normally: `next_batch` gave its place back.
    pub(crate) fn ended(mut self) {
        self.on_abnormal_end = None;
    }
}

impl<F: FnOnce(bool)> Drop for RunnerPlace<F> {
    fn drop(&mut self) {
        if let Some(f) = self.on_abnormal_end.take() {
            f(std::thread::panicking());
        }
    }
}

/// What the combiners' tests share: an engine over a real SQLite file that combines (one
/// call at once), a second connection to hold that file's write lock, and waits.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;
    use std::time::Duration;

    use errand_store_sqlite::{SqliteOptions, SqliteStore};

    use crate::{Engine, EngineConfig};

    /// The engine, and a raw connection to its file.
    pub(crate) fn combining_engine(dir: &std::path::Path) -> (Arc<Engine>, rusqlite::Connection) {
        let options = SqliteOptions::in_dir(dir);
        let store = SqliteStore::open(&options).expect("open");
        let engine = Engine::new(
            Arc::new(store),
            EngineConfig {
                combined_calls_at_once: Some(1),
                // Parked claims stay parked: the tests count every store call.
                claim_recheck: Duration::from_secs(3600),
                ..EngineConfig::default()
            },
        );
        let raw = rusqlite::Connection::open(&options.path).expect("raw connection");
        raw.busy_timeout(Duration::from_secs(5)).expect("busy");
        (engine, raw)
    }

    /// A claim of one job from queue `q` by `worker`, waiting up to `wait`.
    pub(crate) fn claim_one(q: &str, worker: &str, wait: Duration) -> crate::ClaimRequest {
        crate::ClaimRequest {
            queue: errand_core::QueueName::parse(q).expect("queue"),
            worker: worker.into(),
            max: 1,
            lease: Duration::from_secs(60),
            kinds: vec![],
            wait,
        }
    }

    /// Polls `done` until it holds (at most 10 s).
    pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
        errand_testkit::eventually(what, Duration::from_secs(10), || {
            let ok = done().then_some(());
            async move { ok }
        })
        .await;
    }

    /// How many store calls named `op` made at most `le` requests together (`le` as the
    /// bucket's label, e.g. `"8"`).
    pub(crate) async fn combined_calls(engine: &Engine, op: &str, le: &str) -> f64 {
        let text = engine.metrics_text().await.expect("metrics");
        let (op, le) = (format!("op=\"{op}\""), format!("le=\"{le}\""));
        text.lines()
            .filter(|l| l.starts_with("errand_store_combined_requests_bucket{"))
            .find(|l| l.contains(&op) && l.contains(&le))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().expect("a number"))
    }

    /// How many store calls named `op` the engine made.
    pub(crate) async fn store_calls(engine: &Engine, op: &str) -> f64 {
        let text = engine.metrics_text().await.expect("metrics");
        let series = format!("errand_store_operation_seconds_count{{op=\"{op}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0.0, |v| v.parse().expect("a number"))
    }
}
