//! The dead-letter set: jobs out of attempts, requeued or purged by selection.

use errand_store::{DeadSelection, StoreError};

use crate::Engine;

impl Engine {
    /// Deletes selected dead jobs and their attempts; returns how many.
    ///
    /// # Errors
    /// The store's error; nothing was deleted.
    pub async fn dead_purge(&self, selection: DeadSelection) -> Result<u64, StoreError> {
        let n = self.store().dead_purge_many(selection).await?;
        if n > 0 {
            self.counts_changed();
        }
        Ok(n)
    }
}
