//! Wakes claims waiting on a queue when it gains ready work.
//!
//! One ready job wakes one waiting claim, not all of them: with many idle workers a wake-all
//! turns every enqueue into a storm of claims that find nothing, which on a small machine
//! costs more than the work itself. The exception: when some waiter on the queue takes only
//! certain kinds, the one woken might not want the job, so every waiter re-checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use errand_core::QueueName;
use tokio::sync::Notify;

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
    filtered_waiters: AtomicUsize,
}

impl QueueSignal {
    /// The notifier to wait on.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

/// Marks a waiter that takes only some kinds, for as long as it waits.
pub(crate) struct FilteredWaiter(Arc<QueueSignal>);

impl Drop for FilteredWaiter {
    fn drop(&mut self) {
        self.0.filtered_waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Most single wake-ups sent for one event; more waiters than this would not all get jobs
/// from one batch anyway before the next claim settles it.
const MAX_SINGLE_WAKES: usize = 1024;

/// One signal per queue that someone waited on.
#[derive(Default)]
pub(crate) struct QueueWaker {
    queues: Mutex<HashMap<QueueName, Arc<QueueSignal>>>,
}

impl QueueWaker {
    /// The signal of `queue`, created on first use.
    pub(crate) fn signal(&self, queue: &QueueName) -> Arc<QueueSignal> {
        let mut map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(queue.clone()).or_default().clone()
    }

    /// Registers a waiter that takes only some kinds until the guard drops.
    pub(crate) fn filtered(signal: &Arc<QueueSignal>) -> FilteredWaiter {
        signal.filtered_waiters.fetch_add(1, Ordering::Relaxed);
        FilteredWaiter(signal.clone())
    }

    /// Wakes claims waiting on `queue`: one per ready job, or all.
    pub(crate) fn wake(&self, queue: &QueueName, ready: Ready) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
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

    /// Wakes every waiting claim (after bulk operations that touch many queues).
    pub(crate) fn wake_all(&self) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        for signal in map.values() {
            signal.notify.notify_waiters();
        }
    }
}
