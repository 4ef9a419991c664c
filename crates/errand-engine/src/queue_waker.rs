//! Wakes claims waiting on a queue when it gains ready work.
//!
//! One ready job wakes one waiting claim, not all of them: with many idle workers a wake-all
//! turns every enqueue into a storm of claims that find nothing, which on a small machine
//! costs more than the work itself. The exception: when some waiter on the queue takes only
//! certain kinds, the one woken might not want the job, so every waiter re-checks.
//!
//! A queue has a signal only while some claim waits on it: queue names come from callers,
//! so a map that kept every name ever asked for would grow without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use errand_core::QueueName;
use tokio::sync::Notify;

use crate::handoff::{Handoff, Offers};

/// How many jobs became ready, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// This many.
    Jobs(usize),
    /// Unknown (another node, a bulk operation): every waiter re-checks.
    Unknown,
}

/// One queue's waiters.
#[derive(Default)]
pub(crate) struct QueueSignal {
    notify: Notify,
    /// Claims holding this signal; changed only under the map's lock, so the entry leaves
    /// the map exactly when the last one goes.
    holders: AtomicUsize,
    filtered_waiters: AtomicUsize,
    /// Claims parked on `notify` right now (an empty claim done, waiting for work).
    parked: AtomicUsize,
    /// What parked claims offer the next insert ([`crate::handoff`]).
    offers: Arc<Offers>,
}

/// A claim's hold on its queue's signal; the queue's entry goes when the last hold drops.
pub(crate) struct Waiting {
    waker: Arc<QueueWakerMap>,
    queue: QueueName,
    signal: Arc<QueueSignal>,
    filtered: bool,
}

impl Waiting {
    /// The notifier to wait on.
    pub(crate) fn notify(&self) -> &Notify {
        &self.signal.notify
    }

    /// Where this claim may offer itself to the queue's next insert while it is parked.
    pub(crate) fn offers(&self) -> &Arc<Offers> {
        &self.signal.offers
    }

    /// Counts this claim as parked (waiting for work) until the guard drops.
    pub(crate) fn parked(&self) -> Parked<'_> {
        self.signal.parked.fetch_add(1, Ordering::Relaxed);
        Parked(&self.signal)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut map = self.waker.lock();
        if self.filtered {
            self.signal.filtered_waiters.fetch_sub(1, Ordering::Relaxed);
        }
        if self.signal.holders.fetch_sub(1, Ordering::Relaxed) == 1 {
            map.remove(&self.queue);
        }
    }
}

/// A claim parked on its queue's notifier, for as long as it lives.
pub(crate) struct Parked<'a>(&'a QueueSignal);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.parked.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Most single wake-ups sent for one event; more waiters than this would not all get jobs
/// from one batch anyway before the next claim settles it.
const MAX_SINGLE_WAKES: usize = 1024;

#[derive(Default)]
struct QueueWakerMap(Mutex<HashMap<QueueName, Arc<QueueSignal>>>);

impl QueueWakerMap {
    fn lock(&self) -> MutexGuard<'_, HashMap<QueueName, Arc<QueueSignal>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One signal per queue that some claim waits on now.
#[derive(Default)]
pub(crate) struct QueueWaker {
    map: Arc<QueueWakerMap>,
}

impl QueueWaker {
    /// Holds `queue`'s signal (creating it) until the returned guard drops. `filtered`: the
    /// claim takes only some kinds, so single wake-ups on this queue become wake-alls.
    pub(crate) fn wait_on(&self, queue: &QueueName, filtered: bool) -> Waiting {
        let mut map = self.map.lock();
        let signal = map.entry(queue.clone()).or_default().clone();
        signal.holders.fetch_add(1, Ordering::Relaxed);
        if filtered {
            signal.filtered_waiters.fetch_add(1, Ordering::Relaxed);
        }
        Waiting {
            waker: self.map.clone(),
            queue: queue.clone(),
            signal,
            filtered,
        }
    }

    /// Wakes claims waiting on `queue`: one per ready job, or all.
    pub(crate) fn wake(&self, queue: &QueueName, ready: Ready) {
        let map = self.map.lock();
        let Some(signal) = map.get(queue) else {
            return;
        };
        match ready {
            Ready::Jobs(n) if signal.filtered_waiters.load(Ordering::Relaxed) == 0 => {
                for _ in 0..n.min(MAX_SINGLE_WAKES) {
                    signal.notify.notify_one();
                }
            }
            _ => signal.notify.notify_waiters(),
        }
    }

    /// Takes the offers of claims parked on `queue` that an insert of `jobs` ready jobs can
    /// fill ([`Offers::take`]).
    pub(crate) fn take_offers(&self, queue: &QueueName, jobs: usize) -> Vec<Handoff> {
        let offers = match self.map.lock().get(queue) {
            Some(signal) => signal.offers.clone(),
            None => return Vec::new(),
        };
        offers.take(jobs)
    }

    /// Wakes every waiting claim (after bulk operations that touch many queues).
    pub(crate) fn wake_all(&self) {
        let map = self.map.lock();
        for signal in map.values() {
            signal.notify.notify_waiters();
        }
    }

    /// Claims on `queue` now, parked or claiming: they will look at the queue again before
    /// they go.
    pub(crate) fn claiming(&self, queue: &QueueName) -> usize {
        self.map
            .lock()
            .get(queue)
            .map_or(0, |s| s.holders.load(Ordering::Relaxed))
    }

    /// Claims parked on `queue` now, waiting for work to arrive.
    pub(crate) fn parked(&self, queue: &QueueName) -> usize {
        self.map
            .lock()
            .get(queue)
            .map_or(0, |s| s.parked.load(Ordering::Relaxed))
    }

    /// Offers parked on `queue` now.
    #[cfg(test)]
    pub(crate) fn offered(&self, queue: &QueueName) -> usize {
        self.map.lock().get(queue).map_or(0, |s| s.offers.len())
    }

    /// Queues with a signal now; bounded by the claims waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> QueueName {
        QueueName::parse(name).expect("queue name")
    }

    #[test]
    fn a_queue_leaves_the_map_with_its_last_waiter() {
        let waker = QueueWaker::default();
        for i in 0..1000 {
            drop(waker.wait_on(&q(&format!("q{i}")), i % 2 == 0));
        }
        assert_eq!(waker.len(), 0, "names nobody waits on are forgotten");
        let a = waker.wait_on(&q("a"), false);
        let b = waker.wait_on(&q("a"), true);
        assert_eq!(waker.len(), 1);
        drop(a);
        assert_eq!(waker.len(), 1, "one claim still waits");
        drop(b);
        assert_eq!(waker.len(), 0);
        waker.wake(&q("a"), Ready::Jobs(1));
        assert_eq!(waker.len(), 0, "waking an unwatched queue creates nothing");
    }

    #[test]
    fn parked_counts_only_claims_waiting_now() {
        let waker = QueueWaker::default();
        let w = waker.wait_on(&q("a"), false);
        assert_eq!(waker.parked(&q("a")), 0);
        let p = w.parked();
        assert_eq!(waker.parked(&q("a")), 1);
        drop(p);
        assert_eq!(waker.parked(&q("a")), 0);
    }

    #[test]
    fn claiming_counts_claims_parked_or_not_until_they_go() {
        let waker = QueueWaker::default();
        assert_eq!(waker.claiming(&q("a")), 0);
        let w = waker.wait_on(&q("a"), false);
        assert_eq!(waker.claiming(&q("a")), 1, "claiming, not parked");
        let p = w.parked();
        assert_eq!(waker.claiming(&q("a")), 1, "parked");
        drop(p);
        drop(w);
        assert_eq!(waker.claiming(&q("a")), 0);
    }

    #[tokio::test]
    async fn a_new_waiter_after_the_entry_went_is_still_woken() {
        let waker = QueueWaker::default();
        drop(waker.wait_on(&q("a"), false));
        let w = waker.wait_on(&q("a"), false);
        let notified = w.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        waker.wake(&q("a"), Ready::Jobs(1));
        tokio::time::timeout(std::time::Duration::from_secs(1), notified)
            .await
            .expect("woken");
    }
}
