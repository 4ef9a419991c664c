//! When a timed maintenance service (promoter, rescuer, scheduler) next has work, so it
//! sleeps until then instead of polling: the store tells the soonest due time after each
//! pass ([`Store::due_in`](errand_store::Store::due_in)), and this node's own writes lower
//! it as they happen (a delayed job enqueued, a lease handed out, a schedule created).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use errand_core::Millis;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The soonest time one service has work, as far as this node knows.
#[derive(Debug, Default)]
pub(crate) struct DueClock {
    next: Mutex<Option<Instant>>,
    /// Set by [`ask`](Self::ask): the store should be asked when work is due.
    ask: AtomicBool,
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

    /// This node wrote work whose due time it does not know (the store made it inside a
    /// transaction): the service asks the store when it is due, without a pass, as soon as
    /// its floor allows (asks made meanwhile share that one question).
    pub(crate) fn ask(&self) {
        self.ask.store(true, Ordering::Release);
        self.sooner.notify_one();
    }

    /// Forgets the planned time: a pass is about to look at everything. Notes made from
    /// here on count.
    pub(crate) fn forget(&self) {
        if let Ok(mut next) = self.next.lock() {
            *next = None;
        }
    }

    /// The planned time, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.next.lock().ok().and_then(|n| *n)
    }

    /// Sleeps until the planned time (not before `not_before`), until an ask (not before
    /// `ask_not_before`), or `cap` at the latest (other nodes' work, which this node hears
    /// of from no one). True when the planned time came (a pass is due: it comes first, so
    /// asks arriving all the time never hold a pass back), false when the cap ran out or
    /// the store is to be asked; `None` when `token` fired. Either answer is followed by a
    /// question to the store, which answers any ask made before it.
    async fn sleep(
        &self,
        cap: Duration,
        not_before: Instant,
        ask_not_before: Instant,
        token: &tokio_util::sync::CancellationToken,
    ) -> Option<bool> {
        let cap_at = Instant::now() + cap;
        loop {
            let now = Instant::now();
            let planned = self.next().map(|n| n.max(not_before));
            if planned.is_some_and(|n| n <= now) {
                self.ask.store(false, Ordering::Release);
                return Some(true);
            }
            let asked = self.ask.load(Ordering::Acquire);
            if cap_at <= now || (asked && ask_not_before <= now) {
                self.ask.store(false, Ordering::Release);
                return Some(false);
            }
            let mut at = planned.map_or(cap_at, |n| n.min(cap_at));
            if asked {
                at = at.min(ask_not_before);
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
    /// At least this long between passes, and between the questions asks bring. Work the
    /// store still calls due right after a pass (a slot a pass chose to leave, a job its
    /// gate holds back) is looked at again after this, not in a busy loop.
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
    let mut last_pass = Instant::now();
    let mut last_ask;
    loop {
        let passed = pass_due;
        if pass_due {
            last_pass = Instant::now();
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
        last_ask = Instant::now();
        match due().await {
            Ok(Some(wait)) if passed => clock.note_in(wait.max(cadence.floor)),
            Ok(Some(wait)) => clock.note_in(wait),
            Ok(None) => {}
            Err(e) => {
                failures.failed(&e);
                clock.note_in(cadence.floor);
            }
        }
        // However often this node's writes say work is due or ask, passes start at least
        // `floor` apart, and so do questions to the store.
        match clock
            .sleep(
                cadence.cap,
                last_pass + cadence.floor,
                last_ask + cadence.floor,
                &token,
            )
            .await
        {
            None => return,
            Some(due) => pass_due = due,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    const CADENCE: Cadence = Cadence {
        cap: Duration::from_secs(1),
        floor: Duration::from_millis(100),
    };

    /// A service over `clock` whose store always answers `due`; counts passes and asks.
    fn service(
        clock: Arc<DueClock>,
        due: Option<Duration>,
    ) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let passes = Arc::new(AtomicUsize::new(0));
        let asks = Arc::new(AtomicUsize::new(0));
        let (p, a) = (passes.clone(), asks.clone());
        tokio::spawn(async move {
            run_when_due(
                "test",
                &clock,
                CADENCE,
                tokio_util::sync::CancellationToken::new(),
                || {
                    p.fetch_add(1, Ordering::SeqCst);
                    async { Ok(Pass::default()) }
                },
                || {
                    a.fetch_add(1, Ordering::SeqCst);
                    async move { Ok(due) }
                },
            )
            .await;
        });
        (passes, asks)
    }

    async fn run_for(d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            tokio::time::advance(Duration::from_millis(1)).await;
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Nothing due: one pass at start, then only the store is asked, once per cap.
    #[tokio::test(start_paused = true)]
    async fn with_nothing_due_it_only_asks_the_store_once_per_cap() {
        let (passes, asks) = service(Arc::default(), None);
        run_for(Duration::from_millis(3500)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 1);
        assert_eq!(asks.load(Ordering::SeqCst), 4, "at start and every second");
    }

    /// A note brings the pass forward to its time, not sooner.
    #[tokio::test(start_paused = true)]
    async fn a_note_runs_a_pass_at_its_time() {
        let clock = Arc::new(DueClock::default());
        let (passes, _) = service(clock.clone(), None);
        run_for(Duration::from_millis(200)).await;
        clock.note_in(Duration::from_millis(300));
        run_for(Duration::from_millis(290)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 1, "not yet");
        run_for(Duration::from_millis(20)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 2, "at the noted time");
    }

    /// Work that stays due, and notes that keep coming, run passes `floor` apart: never a
    /// busy loop.
    #[tokio::test(start_paused = true)]
    async fn passes_that_stay_due_run_a_floor_apart() {
        let clock = Arc::new(DueClock::default());
        let (passes, _) = service(clock.clone(), Some(Duration::ZERO));
        for _ in 0..100 {
            clock.poke();
            run_for(Duration::from_millis(10)).await;
        }
        let n = passes.load(Ordering::SeqCst);
        assert!((9..=12).contains(&n), "{n} passes in one second");
    }

    /// An ask has the store asked at once, and runs no pass until the answer says so.
    #[tokio::test(start_paused = true)]
    async fn an_ask_asks_the_store_without_a_pass() {
        let clock = Arc::new(DueClock::default());
        let (passes, asks) = service(clock.clone(), None);
        run_for(Duration::from_millis(100)).await;
        assert_eq!(asks.load(Ordering::SeqCst), 1, "at start");
        clock.ask();
        run_for(Duration::from_millis(10)).await;
        assert_eq!(
            asks.load(Ordering::SeqCst),
            2,
            "asked at once, not at the cap"
        );
        assert_eq!(passes.load(Ordering::SeqCst), 1, "no pass for an ask");
    }

    /// Asks arriving all the time neither hold back a pass that is due nor have the store
    /// asked more than once per floor.
    #[tokio::test(start_paused = true)]
    async fn asks_never_hold_a_due_pass_back() {
        let clock = Arc::new(DueClock::default());
        let (passes, asks) = service(clock.clone(), None);
        run_for(Duration::from_millis(50)).await;
        clock.note_in(Duration::from_millis(300));
        for _ in 0..500 {
            clock.ask();
            run_for(Duration::from_millis(1)).await;
        }
        assert_eq!(passes.load(Ordering::SeqCst), 2, "the noted pass ran");
        let n = asks.load(Ordering::SeqCst);
        assert!(n <= 10, "{n} questions in half a second");
    }
}
