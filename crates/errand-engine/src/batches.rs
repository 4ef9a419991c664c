//! Batches: many jobs enqueued as one, jobs added while open, closing; each write wakes
//! the claims of the queues that gained ready jobs, as an enqueue does.

use errand_core::batch::{Batch, NewBatch};
use errand_core::{BatchId, NewJob};
use errand_store::{BatchListParams, BatchWrite, StoreError};

use crate::Engine;

impl Engine {
    /// Creates a batch with its first jobs. A closed batch whose jobs all ended (or that has
    /// none) completes at once: its `on_complete` job is enqueued by the store.
    ///
    /// # Errors
    /// `NotFound` for an unknown `after` job, or the store's error; nothing was stored.
    pub async fn batch_create(
        &self,
        batch: NewBatch,
        jobs: Vec<NewJob>,
    ) -> Result<BatchWrite, StoreError> {
        let out = self
            .metrics
            .timed(
                "batch_create",
                self.store().batch_create(batch, self.insert_params(jobs)),
            )
            .await?;
        self.announce_batch(&out);
        Ok(out)
    }

    /// Adds jobs to an open batch.
    ///
    /// # Errors
    /// `NotFound`, `WrongState` when it is not open, or the store's error.
    pub async fn batch_add(
        &self,
        id: BatchId,
        jobs: Vec<NewJob>,
    ) -> Result<BatchWrite, StoreError> {
        let out = self
            .metrics
            .timed(
                "batch_add",
                self.store().batch_add(id, self.insert_params(jobs)),
            )
            .await?;
        self.announce_batch(&out);
        Ok(out)
    }

    /// Closes an open batch; it completes when its last job ends (at once if none is
    /// pending). Closing a closed or completed batch changes nothing.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn batch_close(&self, id: BatchId) -> Result<Batch, StoreError> {
        let batch = self.store().batch_close(id).await?;
        self.announce_completion(&batch);
        Ok(batch)
    }

    /// One batch with its counts.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn batch_get(&self, id: BatchId) -> Result<Batch, StoreError> {
        self.store().batch_get(id).await
    }

    /// A page of batches, newest first.
    ///
    /// # Errors
    /// The store's error.
    pub async fn batch_list(&self, params: BatchListParams) -> Result<Vec<Batch>, StoreError> {
        self.store().batch_list(params).await
    }

    fn announce_batch(&self, out: &BatchWrite) {
        self.announce_inserted(&out.jobs);
        self.announce_completion(&out.batch);
    }

    /// A batch that completed in this call enqueued its `on_complete` job (in a queue this
    /// call did not name: wake every claim, each re-checks) and may have recorded a callback.
    fn announce_completion(&self, batch: &Batch) {
        if batch.completed_at.is_some() {
            self.feed.poke();
            if batch.on_complete_job_id.is_some() {
                self.wake_all();
            }
            if batch.callback_url.is_some() {
                self.deliveries_due.notify_one();
            }
        }
    }
}
