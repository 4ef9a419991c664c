//! Queues a flow made ready inside a transaction (released children, compensations,
//! `on_complete` jobs, reset steps): the engine that made the call does not know them, so
//! the store collects them while the transaction runs and wakes their claimers after
//! commit, on this node (the wake-up broadcast) and on the others (the notifier).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

tokio::task_local! {
    static WOKEN: Arc<Mutex<BTreeSet<String>>>;
}

/// Notes that `queue` gained a ready job in the running transaction. Outside a collecting
/// scope it does nothing (the caller announces what it wrote itself).
pub(crate) fn note(queue: &str) {
    let _ = WOKEN.try_with(|w| {
        if let Ok(mut w) = w.lock() {
            w.insert(queue.to_string());
        }
    });
}

/// Runs `f`, returning what it returned and the queues noted meanwhile.
pub(crate) async fn collecting<F: Future>(f: F) -> (F::Output, Vec<String>) {
    let woken: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let out = WOKEN.scope(woken.clone(), f).await;
    let queues = woken
        .lock()
        .map(|mut w| std::mem::take(&mut *w).into_iter().collect())
        .unwrap_or_default();
    (out, queues)
}
