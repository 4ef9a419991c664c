//! Callers waiting for a job to end (`GET /v1/jobs/{id}?wait=`), keyed by job id.
//!
//! A waiter costs one map entry (shared by every waiter of the same job) and one parked
//! future: no broadcast receiver and no periodic store read of its own. It is woken by
//! this node's own settles, cancels and rescues, and by the event tail's final events (a
//! job that ended on another PostgreSQL node); it then reads the store once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use errand_core::JobId;
use tokio::sync::Notify;

/// The registry.
#[derive(Default)]
pub(crate) struct Waiters {
    by_job: Mutex<HashMap<JobId, (Arc<Notify>, usize)>>,
}

impl Waiters {
    /// Registers a waiter of `job`; dropping the guard unregisters it.
    pub(crate) fn register(self: &Arc<Self>, job: JobId) -> WaiterGuard {
        let notify = match self.by_job.lock() {
            Ok(mut m) => {
                let entry = m.entry(job).or_insert_with(|| (Arc::new(Notify::new()), 0));
                entry.1 += 1;
                entry.0.clone()
            }
            // A poisoned map (a panic elsewhere while holding it) still lets this waiter
            // wait for its deadline; it is just not woken early.
            Err(_) => Arc::new(Notify::new()),
        };
        WaiterGuard {
            waiters: self.clone(),
            job,
            notify,
        }
    }

    /// Wakes every waiter of `job` (nothing when none waits).
    pub(crate) fn wake(&self, job: JobId) {
        let notify = self
            .by_job
            .lock()
            .ok()
            .and_then(|m| m.get(&job).map(|(n, _)| n.clone()));
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Jobs with at least one waiter.
    pub(crate) fn jobs_waited_on(&self) -> usize {
        self.by_job.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// One registered waiter.
pub(crate) struct WaiterGuard {
    waiters: Arc<Waiters>,
    job: JobId,
    notify: Arc<Notify>,
}

impl WaiterGuard {
    /// What wakes this waiter: enable the future before reading the store, so a wake-up
    /// between the read and the wait is not lost.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.waiters.by_job.lock() {
            if let Some(entry) = m.get_mut(&self.job) {
                entry.1 = entry.1.saturating_sub(1);
                if entry.1 == 0 {
                    m.remove(&self.job);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_every_waiter_of_the_job_and_entries_go_with_them() {
        let w = Arc::new(Waiters::default());
        let id = JobId(uuid::Uuid::now_v7());
        let a = w.register(id);
        let b = w.register(id);
        let other = w.register(JobId(uuid::Uuid::now_v7()));
        assert_eq!(w.jobs_waited_on(), 2);
        {
            let fa = a.notify().notified();
            let fb = b.notify().notified();
            let fo = other.notify().notified();
            tokio::pin!(fa, fb, fo);
            fa.as_mut().enable();
            fb.as_mut().enable();
            fo.as_mut().enable();
            w.wake(id);
            tokio::time::timeout(std::time::Duration::from_secs(1), async {
                fa.await;
                fb.await;
            })
            .await
            .expect("both woken");
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(20), fo)
                    .await
                    .is_err(),
                "another job's waiter stays asleep"
            );
        }
        drop((a, b));
        assert_eq!(w.jobs_waited_on(), 1);
        drop(other);
        assert_eq!(w.jobs_waited_on(), 0);
    }
}
