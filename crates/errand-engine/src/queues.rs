//! Queues: counts per state, the age of the oldest ready job, claims waiting, pause and
//! resume.

use errand_core::{QueueInfo, QueueName};
use errand_store::StoreError;

use crate::Engine;

impl Engine {
    /// Every known queue with its counts and the claims parked on it in this process.
    ///
    /// # Errors
    /// The store's error.
    pub async fn queue_list(&self) -> Result<Vec<QueueInfo>, StoreError> {
        let list = self
            .metrics
            .timed("queue_list", self.store().queue_list())
            .await?;
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

    /// Pauses a queue: its jobs stay ready but are not handed out.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn queue_pause(&self, queue: &QueueName) -> Result<QueueInfo, StoreError> {
        let info = self.store().queue_pause(queue).await?;
        Ok(self.with_waiting(info))
    }

    /// Resumes a queue and wakes its waiting workers.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn queue_resume(&self, queue: &QueueName) -> Result<QueueInfo, StoreError> {
        let info = self.store().queue_resume(queue).await?;
        self.wake(queue);
        Ok(self.with_waiting(info))
    }

    /// A queue's figures with the claims parked on it in this process.
    pub(crate) fn queue_with_waiting(&self, info: QueueInfo) -> QueueInfo {
        self.with_waiting(info)
    }

    fn with_waiting(&self, mut info: QueueInfo) -> QueueInfo {
        info.waiting_claims = u32::try_from(self.waiting_claims(&info.name)).unwrap_or(u32::MAX);
        info
    }
}
