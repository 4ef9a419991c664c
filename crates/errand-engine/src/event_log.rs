//! Reading the store's event log: event streams, result waiters and the subscription
//! fan-out all read it through these.

use errand_core::EventId;
use errand_store::{EventPage, StoreError};

use crate::Engine;

impl Engine {
    /// Up to `limit` events after `after` (from the oldest kept when `None`), commit order.
    ///
    /// # Errors
    /// The store's error.
    pub async fn event_read(
        &self,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        self.store().event_read(after, limit).await
    }

    /// The newest readable event (`None`: none yet): where a stream without history starts.
    ///
    /// # Errors
    /// The store's error.
    pub async fn event_head(&self) -> Result<Option<EventId>, StoreError> {
        self.store().event_head().await
    }
}
