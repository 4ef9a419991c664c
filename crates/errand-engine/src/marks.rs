//! Enqueues that happen once per mark, ever: a watched file's version runs one job, even
//! across restarts and after that job was pruned.

use errand_core::{JobState, NewJob};
use errand_store::{InsertedJob, JobInsertMarkedParams, StoreError};

use crate::Engine;

impl Engine {
    /// Enqueues `job` unless `(scope, key)` was marked before; marks it in the same
    /// transaction and wakes the queue's workers. `None` when the mark was already there.
    ///
    /// # Errors
    /// The store's error; then neither the mark nor the job was stored.
    pub async fn enqueue_marked(
        &self,
        job: NewJob,
        scope: &str,
        key: &str,
    ) -> Result<Option<InsertedJob>, StoreError> {
        let out = self
            .store()
            .job_insert_marked(JobInsertMarkedParams {
                job,
                scope: scope.to_string(),
                key: key.to_string(),
                idempotency_window: self.config().idempotency_window,
            })
            .await?;
        if let Some(r) = &out {
            if r.inserted && r.job.state == JobState::Available {
                self.wake_ready(&r.job.queue, 1);
            }
        }
        Ok(out)
    }

    /// Every mark of a scope, sorted.
    ///
    /// # Errors
    /// The store's error.
    pub async fn marks(&self, scope: &str) -> Result<Vec<String>, StoreError> {
        self.store().mark_list(scope).await
    }

    /// Forgets marks of a scope (files that are gone); returns how many there were.
    ///
    /// # Errors
    /// The store's error.
    pub async fn forget_marks(&self, scope: &str, keys: Vec<String>) -> Result<u64, StoreError> {
        self.store().mark_delete(scope, keys).await
    }
}
