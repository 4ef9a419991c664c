//! Wakes claims waiting on a queue when it gains ready work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use errand_core::QueueName;
use tokio::sync::Notify;

/// One [`Notify`] per queue that someone waited on.
#[derive(Default)]
pub(crate) struct QueueWaker {
    queues: Mutex<HashMap<QueueName, Arc<Notify>>>,
}

impl QueueWaker {
    /// The notifier of `queue`, created on first use.
    pub(crate) fn notifier(&self, queue: &QueueName) -> Arc<Notify> {
        let mut map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(queue.clone()).or_default().clone()
    }

    /// Wakes every claim waiting on `queue`.
    pub(crate) fn wake(&self, queue: &QueueName) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(queue) {
            n.notify_waiters();
        }
    }

    /// Wakes every waiting claim (after bulk operations that touch many queues).
    pub(crate) fn wake_all(&self) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        for n in map.values() {
            n.notify_waiters();
        }
    }
}
