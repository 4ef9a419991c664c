//! When a timed maintenance service (promoter, rescuer, scheduler) next has work, so it
//! sleeps until then instead of polling: the store tells the soonest due time after each
//! pass ([`Store::due_in`](errand_store::Store::due_in)), and this node's own writes lower
//! it as they happen (a delayed job enqueued, a lease handed out, a schedule created).

use std::sync::Mutex;
use std::time::Duration;

use errand_core::Millis;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The soonest time one service has work, as far as this node knows.
#[derive(Debug, Default)]
pub(crate) struct DueClock {
    next: Mutex<Option<Instant>>,
    sooner: Notify,
}

impl DueClock {
    /// Work may be due in `wait`: the service wakes then, unless it planned to sooner.
    pub(crate) fn note_in(&self, wait: Duration) {
        let at = Instant::now() + wait;
        let Ok(mut next) = self.next.lock() else {
            return;
        };
        if next.is_none_or(|n| at < n) {
            *next = Some(at);
            drop(next);
            self.sooner.notify_one();
        }
    }

    /// Work may be due at `at` (milliseconds since the epoch, the store's clock, which on
    /// this node's side is the system clock).
    pub(crate) fn note_at(&self, at: Millis) {
        let wait = at.saturating_sub(errand_core::time::system_now());
        self.note_in(Duration::from_millis(u64::try_from(wait).unwrap_or(0)));
    }

    /// Something changed that the service should look at now.
    pub(crate) fn poke(&self) {
        self.note_in(Duration::ZERO);
    }

    /// Forgets the planned time: a pass is about to look at everything. Notes made from
    /// here on count.
    fn forget(&self) {
        if let Ok(mut next) = self.next.lock() {
            *next = None;
        }
    }

    fn next(&self) -> Option<Instant> {
        self.next.lock().ok().and_then(|n| *n)
    }

    /// Sleeps until the planned time, or `cap` at the latest (other nodes' work, which
    /// this node hears of from no one). True when the planned time came (a pass is due),
    /// false when only the cap ran out; `None` when `token` fired.
    async fn sleep(
        &self,
        cap: Duration,
        token: &tokio_util::sync::CancellationToken,
    ) -> Option<bool> {
        let cap_at = Instant::now() + cap;
        loop {
            let planned = self.next();
            let at = planned.map_or(cap_at, |n| n.min(cap_at));
            if at <= Instant::now() {
                return Some(planned.is_some_and(|n| n <= Instant::now()));
            }
            let sooner = self.sooner.notified();
            tokio::select! {
                _ = token.cancelled() => return None,
                _ = sooner => {}
                _ = tokio::time::sleep_until(at) => {}
            }
        }
    }
}

/// What one pass of a timed service did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pass {
    /// Records changed, for the log.
    pub changed: usize,
    /// The pass stopped at its batch size: run another at once.
    pub more: bool,
}

/// How often a timed service asks the store, and how soon it may run again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cadence {
    /// Ask the store at least this often: other nodes' work reaches this node so.
    pub cap: Duration,
    /// At least this long between passes. Work the store still calls due right after a
    /// pass (a slot a pass chose to leave, a job its gate holds back) is looked at again
    /// after this, not in a busy loop.
    pub floor: Duration,
}

/// Runs `pass` at start and whenever `clock` says work is due; asks the store (`due`) after
/// each pass and at least every `cadence.cap`; stops when `token` fires. Errors are logged,
/// not fatal: a store briefly away must not stop maintenance for good.
pub(crate) async fn run_when_due<P, PF, D, DF>(
    name: &'static str,
    clock: &DueClock,
    cadence: Cadence,
    token: tokio_util::sync::CancellationToken,
    mut pass: P,
    mut due: D,
) where
    P: FnMut() -> PF,
    PF: std::future::Future<Output = Result<Pass, errand_store::StoreError>>,
    D: FnMut() -> DF,
    DF: std::future::Future<Output = Result<Option<Duration>, errand_store::StoreError>>,
{
    let mut failures = crate::maintenance::PassFailures::new(name);
    let mut pass_due = true;
    loop {
        let passed = pass_due;
        if pass_due {
            clock.forget();
            loop {
                match pass().await {
                    Ok(p) => {
                        failures.succeeded();
                        if p.changed > 0 {
                            tracing::debug!(
                                service = name,
                                changed = p.changed,
                                "maintenance pass"
                            );
                        }
                        if p.more && !token.is_cancelled() {
                            continue;
                        }
                    }
                    Err(e) => failures.failed(&e),
                }
                break;
            }
        }
        match due().await {
            Ok(Some(wait)) if passed => clock.note_in(wait.max(cadence.floor)),
            Ok(Some(wait)) => clock.note_in(wait),
            Ok(None) => {}
            Err(e) => {
                failures.failed(&e);
                clock.note_in(cadence.floor);
            }
        }
        match clock.sleep(cadence.cap, &token).await {
            None => return,
            Some(due) => pass_due = due,
        }
    }
}
