//! Queue reads: counts per state and the age of the oldest ready job.

use errand_core::{QueueInfo, QueueName};
use errand_store::StoreError;

use crate::Engine;

impl Engine {
    /// Every known queue with its counts and the claims parked on it in this process.
    ///
    /// # Errors
    /// The store's error.
    pub async fn queue_list(&self) -> Result<Vec<QueueInfo>, StoreError> {
        let list = self.store().queue_list().await?;
        Ok(list.into_iter().map(|q| self.with_waiting(q)).collect())
    }

    /// One queue with its counts and the claims parked on it in this process.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn queue_get(&self, name: &QueueName) -> Result<QueueInfo, StoreError> {
        let info = self.store().queue_get(name).await?;
        Ok(self.with_waiting(info))
    }
}
