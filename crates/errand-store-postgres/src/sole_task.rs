//! Maintenance a node runs beside its writes, in a task of its own, one run at a time: a
//! vacuum of the count rows, an `ANALYZE` of a grown table.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs one task at a time; a start while one runs is skipped (the next start comes with
/// the next writes).
#[derive(Default)]
pub(crate) struct SoleTask {
    running: Arc<AtomicBool>,
}

impl SoleTask {
    /// Spawns `task` unless one is running; true when it was spawned.
    pub(crate) fn start(&self, task: impl Future<Output = ()> + Send + 'static) -> bool {
        if self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        let running = self.running.clone();
        tokio::spawn(async move {
            task.await;
            running.store(false, Ordering::Release);
        });
        true
    }
}
