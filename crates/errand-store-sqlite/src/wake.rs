//! Wake-ups for claimers of queues that a flow made ready (released continuations and
//! steps, compensations, `on_complete` jobs, reset steps): the engine does not know those
//! queues were touched, so the store tells it through [`Store::wakeups`]
//! (errand_store::Store::wakeups).
//!
//! Writes note queues here, on the thread that runs their group (the writer thread, or a
//! lone write's caller); the same thread sends them after the group commits (a claimer
//! woken before the commit would find nothing). A note left by a write
//! that was rolled back only costs a spurious wake-up, which a claimer answers by finding
//! nothing.

use std::cell::RefCell;
use std::collections::BTreeSet;

use errand_core::QueueName;
use tokio::sync::broadcast;

/// Wake-ups kept for a slow listener before it lags (and wakes every queue).
const CAPACITY: usize = 1024;

thread_local! {
    static READY: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
}

/// Notes that `queue` gained ready jobs in the current write.
pub(crate) fn ready(queue: &str) {
    READY.with(|r| {
        r.borrow_mut().insert(queue.to_string());
    });
}

/// The queues noted since the last call, forgotten.
pub(crate) fn take() -> BTreeSet<String> {
    READY.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// The store's broadcast of queues made ready by flows.
#[derive(Clone)]
pub(crate) struct Wakeups {
    tx: broadcast::Sender<QueueName>,
}

impl Wakeups {
    /// A broadcast nobody listens to yet.
    pub(crate) fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self { tx }
    }

    /// A new listener.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<QueueName> {
        self.tx.subscribe()
    }

    /// Sends the queues noted by the writes of a committed group.
    pub(crate) fn send_noted(&self) {
        for q in take() {
            if let Ok(name) = QueueName::parse(&q) {
                // No listener is no error: nobody waits.
                let _ = self.tx.send(name);
            }
        }
    }
}
