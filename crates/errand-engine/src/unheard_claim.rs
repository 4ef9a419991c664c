//! [`UnheardClaim`]: jobs a claim took that nobody may be left to hear of.
//!
//! A long-poll's caller can go away (its client disconnects) while the store is claiming
//! for it. The store finishes regardless; without this guard the jobs would stay leased to
//! nobody until the lease ran out, each costing an attempt.

use std::sync::Arc;

use errand_store::{ClaimedJob, JobReleaseManyParams, SharedStore};

use crate::queue_waker::{QueueWaker, Ready};

/// Jobs a store claim took, on their way to the caller who asked. Dropped before the caller
/// took them (the caller went away), it gives them back to the queue, so a disconnected
/// long-poll costs neither an attempt nor a lease.
pub(crate) struct UnheardClaim {
    jobs: Vec<ClaimedJob>,
    store: SharedStore,
    waker: Arc<QueueWaker>,
}

impl UnheardClaim {
    /// Wraps what a store claim returned until the caller takes it.
    pub(crate) fn new(jobs: Vec<ClaimedJob>, store: SharedStore, waker: Arc<QueueWaker>) -> Self {
        Self { jobs, store, waker }
    }

    /// The jobs, before the caller takes them.
    pub(crate) fn jobs(&self) -> &[ClaimedJob] {
        &self.jobs
    }

    /// The caller has the jobs: nothing to give back.
    pub(crate) fn heard(mut self) -> Vec<ClaimedJob> {
        std::mem::take(&mut self.jobs)
    }
}

impl Drop for UnheardClaim {
    fn drop(&mut self) {
        if self.jobs.is_empty() {
            return;
        }
        let leases = self
            .jobs
            .drain(..)
            .map(|c| (c.job.id, c.lease_token))
            .collect();
        let store = self.store.clone();
        let waker = self.waker.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("claimed jobs of a caller that went away wait for their lease to end: no runtime to release them");
            return;
        };
        runtime.spawn(async move {
            match store
                .job_release_many(JobReleaseManyParams { leases })
                .await
            {
                Ok(released) => {
                    for job in &released {
                        waker.wake(&job.queue, Ready::Jobs(1));
                    }
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not release the jobs of a claim nobody heard; they return when their lease ends"
                ),
            }
        });
    }
}
