//! A [`JobHost`] for the worker's own tests: it hands out the jobs a test gives it, records
//! every call, and answers as each test sets it to, so races can be staged deterministically.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use errand_core::{Job, JobId, JobKind, JobState, LeaseToken, NewLogLine, Progress, QueueName};
use errand_runner::host::{HostError, HostedJob, JobHost, RunSettlement, RunVerdict};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How the fake answers heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Beat {
    /// Renewed.
    #[default]
    Ok,
    /// `Unavailable`, at once.
    Away,
    /// Never answers (a server that took the connection and went silent).
    Hang,
    /// `LeaseLost`.
    LeaseLost,
}

/// One heartbeat as the fake received it.
#[derive(Debug, Clone)]
pub(crate) struct BeatSeen {
    pub id: JobId,
    pub progress: Option<Progress>,
    pub checkpoint: Option<Value>,
}

/// The fake host. Every knob is public; set them before (or while) the worker runs.
#[derive(Default)]
pub(crate) struct FakeHost {
    /// Jobs the next claims hand out.
    pub ready: Mutex<VecDeque<HostedJob>>,
    /// Claims wait for this token before they answer (a claim in flight when shutdown starts).
    pub hold_claims_until: Mutex<Option<CancellationToken>>,
    /// ... and then this much later.
    pub claims_answer_after_hold: Mutex<Duration>,
    /// Claims answer with every ready job, whatever `max` said.
    pub overfill: Mutex<bool>,
    /// Claims answer at once, empty, whatever `wait` said.
    pub answer_empty_at_once: Mutex<bool>,
    pub claims: AtomicUsize,
    /// The lease the host says it grants (`JobHost::lease`).
    pub lease: Mutex<Option<Duration>>,
    pub beat: Mutex<Beat>,
    pub beats: Mutex<Vec<BeatSeen>>,
    /// The next this many settle calls answer `Unavailable`.
    pub settles_away: AtomicUsize,
    /// A settle call that holds one of these ids is refused whole.
    pub refuse_batches_with: Mutex<HashSet<JobId>>,
    /// The first settlement of each of these ids is answered `Unavailable` on its own.
    pub entry_busy_once: Mutex<HashSet<JobId>>,
    /// The first settle call holding one of these ids takes its settlements but leaves the
    /// last one unanswered (a host that answers fewer than were sent).
    pub answer_short_once: Mutex<HashSet<JobId>>,
    /// Every settle call, as sent.
    pub settle_calls: Mutex<Vec<Vec<RunSettlement>>>,
    /// When each settle call came (the test's clock).
    pub settle_times: Mutex<Vec<tokio::time::Instant>>,
    /// Settlements that took effect.
    pub settled: Mutex<Vec<RunSettlement>>,
    /// Releases as asked.
    pub releases: Mutex<Vec<JobId>>,
    /// Release answers `Unavailable` for these.
    pub release_away: Mutex<HashSet<JobId>>,
    /// Release never answers.
    pub release_hangs: Mutex<bool>,
    /// Release takes this long to answer.
    pub release_delay: Mutex<Option<Duration>>,
    /// Release answers that the lease no longer holds these jobs.
    pub release_lost: Mutex<HashSet<JobId>>,
    changed: Notify,
    pushed: Notify,
}

/// Locks a test mutex, poisoned or not.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeHost {
    /// Hands `jobs` to the next claims.
    pub fn push(&self, jobs: impl IntoIterator<Item = HostedJob>) {
        lock(&self.ready).extend(jobs);
        self.pushed.notify_waiters();
        self.changed.notify_waiters();
    }

    fn note(&self) {
        self.changed.notify_waiters();
    }

    /// Wakes [`until`](Self::until) waiters to look again (a test's own state changed).
    pub fn note_changed(&self) {
        self.note();
    }

    /// Waits (at most 10 s of the test's clock) until `cond` holds.
    pub async fn until(&self, what: &str, cond: impl Fn(&Self) -> bool) {
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
        if tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .is_err()
        {
            panic!("never happened: {what}");
        }
    }

    /// The settlements that took effect for `id`.
    pub fn settled_for(&self, id: JobId) -> Vec<RunSettlement> {
        lock(&self.settled)
            .iter()
            .filter(|s| s.id == id)
            .cloned()
            .collect()
    }

    /// Settlements sent for `id`, whether they took effect or not.
    pub fn sent_for(&self, id: JobId) -> usize {
        lock(&self.settle_calls)
            .iter()
            .flatten()
            .filter(|s| s.id == id)
            .count()
    }

    fn take(&self, max: u32) -> Vec<HostedJob> {
        let mut ready = lock(&self.ready);
        let n = if *lock(&self.overfill) {
            ready.len()
        } else {
            ready.len().min(max as usize)
        };
        ready.drain(..n).collect()
    }
}

/// What the server refuses in a whole settle call: NUL characters, a retry past 9999.
fn server_refuses(s: &RunSettlement) -> Option<String> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    match &s.verdict {
        RunVerdict::Complete { result } if result.as_ref().is_some_and(has_nul) => {
            Some("400 invalid_request: result: must not contain NUL characters".into())
        }
        RunVerdict::Fail { error, .. } if error.contains('\0') => {
            Some("400 invalid_request: error: must not contain NUL characters".into())
        }
        RunVerdict::Fail {
            retry_in: Some(d), ..
        } if *d > Duration::from_secs(8000 * 366 * 86_400) => {
            Some("400 invalid_request: retry_in_ms: past the year 9999".into())
        }
        _ => None,
    }
}

/// A running job of `kind` with `payload`, as a claim hands it out.
pub(crate) fn job(kind: &str, payload: Value) -> HostedJob {
    let now = jiff::Timestamp::now();
    HostedJob {
        job: Job {
            secrets: Default::default(),
            flow: Default::default(),
            reply_to: None,
            correlation_id: None,
            callback_url: None,
            id: JobId::new(),
            kind: JobKind::parse(kind).expect("kind"),
            queue: QueueName::parse("default").expect("queue"),
            state: JobState::Running,
            payload,
            priority: 0,
            run_at: now,
            attempt: 1,
            max_attempts: 25,
            timeout_ms: None,
            tags: vec![],
            idempotency_key: None,
            schedule: None,
            slot: None,
            result: None,
            error: None,
            progress: None,
            checkpoint: None,
            worker: Some("fake".into()),
            lease_expires_at: None,
            created_at: now,
            updated_at: now,
            started_at: Some(now),
            finished_at: None,
            ordering: Default::default(),
            parked: false,
        },
        lease_token: LeaseToken::new(),
    }
}

#[async_trait::async_trait]
impl JobHost for FakeHost {
    async fn claim(
        &self,
        _: &QueueName,
        _: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<Vec<HostedJob>, HostError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        self.note();
        if *lock(&self.answer_empty_at_once) {
            tokio::task::yield_now().await;
            return Ok(vec![]);
        }
        let hold = lock(&self.hold_claims_until).clone();
        if let Some(hold) = hold {
            hold.cancelled().await;
            let after = *lock(&self.claims_answer_after_hold);
            tokio::time::sleep(after).await;
            return Ok(self.take(max));
        }
        let until = tokio::time::Instant::now() + wait;
        loop {
            let pushed = self.pushed.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            let jobs = self.take(max);
            if !jobs.is_empty() {
                return Ok(jobs);
            }
            if tokio::time::timeout_at(until, pushed).await.is_err() {
                return Ok(vec![]);
            }
        }
    }

    fn lease(&self) -> Option<Duration> {
        *lock(&self.lease)
    }

    async fn heartbeat(
        &self,
        id: JobId,
        _: LeaseToken,
        progress: Option<Progress>,
        checkpoint: Option<Value>,
    ) -> Result<(), HostError> {
        lock(&self.beats).push(BeatSeen {
            id,
            progress,
            checkpoint,
        });
        self.note();
        let beat = *lock(&self.beat);
        match beat {
            Beat::Ok => Ok(()),
            Beat::Away => Err(HostError::Unavailable("away".into())),
            Beat::Hang => std::future::pending().await,
            Beat::LeaseLost => Err(HostError::LeaseLost),
        }
    }

    async fn settle(
        &self,
        settlements: Vec<RunSettlement>,
    ) -> Result<Vec<Result<(), HostError>>, HostError> {
        lock(&self.settle_calls).push(settlements.clone());
        lock(&self.settle_times).push(tokio::time::Instant::now());
        self.note();
        if self
            .settles_away
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(HostError::Unavailable("503 unavailable: away".into()));
        }
        if let Some(why) = settlements.iter().find_map(server_refuses) {
            return Err(HostError::Refused(why));
        }
        {
            let refuse = lock(&self.refuse_batches_with);
            if settlements.iter().any(|s| refuse.contains(&s.id)) {
                return Err(HostError::Refused("409 constraint_violated: x".into()));
            }
        }
        let short = {
            let mut once = lock(&self.answer_short_once);
            let hit = settlements
                .iter()
                .find(|s| once.contains(&s.id))
                .map(|s| s.id);
            hit.is_some_and(|id| once.remove(&id))
        };
        let mut out = Vec::with_capacity(settlements.len());
        for s in settlements {
            if lock(&self.entry_busy_once).remove(&s.id) {
                out.push(Err(HostError::Unavailable("busy".into())));
            } else {
                lock(&self.settled).push(s);
                out.push(Ok(()));
            }
        }
        if short {
            out.pop();
        }
        self.note();
        Ok(out)
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

    async fn release(&self, id: JobId, _: LeaseToken) -> Result<(), HostError> {
        lock(&self.releases).push(id);
        self.note();
        if *lock(&self.release_hangs) {
            return std::future::pending().await;
        }
        let delay = *lock(&self.release_delay);
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if lock(&self.release_away).contains(&id) {
            return Err(HostError::Unavailable("away".into()));
        }
        if lock(&self.release_lost).contains(&id) {
            return Err(HostError::LeaseLost);
        }
        Ok(())
    }

    async fn lease_acquire(&self, _: &str, _: &str, _: Duration) -> Result<bool, HostError> {
        Ok(false)
    }

    async fn lease_release(&self, _: &str, _: &str) -> Result<(), HostError> {
        Ok(())
    }
}
