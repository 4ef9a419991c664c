//! Webhook deliveries: the fan-out records them, the delivery worker claims, sends and
//! settles them, the API lists them; all through these, so a recorded delivery wakes the
//! sender of this process.

use std::sync::Arc;

use errand_core::{ClaimedDelivery, Delivery, EventId};
use errand_store::{
    DeliveryClaimParams, DeliveryFanoutParams, DeliveryListParams, DeliverySettleParams, StoreError,
};

use crate::Engine;

impl Engine {
    /// Where the subscription fan-out has read the event log to (`None`: never ran).
    ///
    /// # Errors
    /// The store's error.
    pub async fn delivery_cursor(&self) -> Result<Option<EventId>, StoreError> {
        self.store().delivery_cursor().await
    }

    /// Records the deliveries of a stretch of the event log and moves the fan-out cursor,
    /// if it is still at `params.from`; false when another node moved it first. Wakes the
    /// sender when it recorded any.
    ///
    /// # Errors
    /// The store's error; nothing was written.
    pub async fn delivery_fanout(&self, params: DeliveryFanoutParams) -> Result<bool, StoreError> {
        let recorded = !params.deliveries.is_empty();
        let done = self.store().delivery_fanout(params).await?;
        if done && recorded {
            self.deliveries_due.notify_one();
        }
        Ok(done)
    }

    /// Leases due deliveries for sending.
    ///
    /// # Errors
    /// The store's error.
    pub async fn delivery_claim(
        &self,
        params: DeliveryClaimParams,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.metrics
            .timed("delivery_claim", self.store().delivery_claim(params))
            .await
    }

    /// Records an attempt at a claimed delivery and what comes next.
    ///
    /// # Errors
    /// `NotFound`, `LeaseLost`, or the store's error.
    pub async fn delivery_settle(
        &self,
        params: DeliverySettleParams,
    ) -> Result<Delivery, StoreError> {
        let delivery = self
            .metrics
            .timed("delivery_settle", self.store().delivery_settle(params))
            .await?;
        self.metrics.delivery_settled(&delivery);
        Ok(delivery)
    }

    /// A page of deliveries with their attempts, newest first.
    ///
    /// # Errors
    /// The store's error.
    pub async fn delivery_list(
        &self,
        params: DeliveryListParams,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.store().delivery_list(params).await
    }

    /// Deletes finished deliveries that ended longer than `older_than` ago.
    ///
    /// # Errors
    /// The store's error.
    pub async fn delivery_prune(
        &self,
        older_than: std::time::Duration,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.store().delivery_prune(older_than, limit).await
    }

    /// The signal rung when this process recorded a delivery due now: the delivery worker
    /// waits on it (and polls, for deliveries other nodes recorded or retries coming due).
    pub fn deliveries_due(&self) -> Arc<tokio::sync::Notify> {
        self.deliveries_due.clone()
    }
}
