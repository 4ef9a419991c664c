//! Queue reads: counts per state and the age of the oldest ready job.

use errand_core::{QueueInfo, QueueName};
use errand_store::StoreError;

use crate::Engine;

impl Engine {
    /// Every known queue with its counts.
    ///
    /// # Errors
    /// The store's error.
    pub async fn queue_list(&self) -> Result<Vec<QueueInfo>, StoreError> {
        self.store().queue_list().await
    }

    /// One queue with its counts.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn queue_get(&self, name: &QueueName) -> Result<QueueInfo, StoreError> {
        self.store().queue_get(name).await
    }
}
