//! Webhook subscriptions: routes and the fan-out change and read them through these.

use errand_core::{NewSubscription, Subscription, SubscriptionId, SubscriptionPatch};
use errand_store::StoreError;

use crate::Engine;

impl Engine {
    /// Creates a subscription; it receives events from now on.
    ///
    /// # Errors
    /// The store's error.
    pub async fn subscription_create(
        &self,
        new: NewSubscription,
    ) -> Result<Subscription, StoreError> {
        self.store().subscription_create(new).await
    }

    /// One subscription.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn subscription_get(&self, id: SubscriptionId) -> Result<Subscription, StoreError> {
        self.store().subscription_get(id).await
    }

    /// Every subscription, oldest first.
    ///
    /// # Errors
    /// The store's error.
    pub async fn subscription_list(&self) -> Result<Vec<Subscription>, StoreError> {
        self.store().subscription_list().await
    }

    /// Changes a subscription (resuming clears its pause reason and failure count); a
    /// resumed subscription's waiting deliveries become due, so the sender is woken.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn subscription_update(
        &self,
        id: SubscriptionId,
        patch: SubscriptionPatch,
    ) -> Result<Subscription, StoreError> {
        let resumed = matches!(
            patch.state,
            Some((errand_core::SubscriptionState::Active, _))
        );
        let sub = self.store().subscription_update(id, patch).await?;
        if resumed {
            self.deliveries_due.notify_one();
        }
        Ok(sub)
    }

    /// Deletes a subscription and its pending deliveries.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn subscription_delete(&self, id: SubscriptionId) -> Result<(), StoreError> {
        self.store().subscription_delete(id).await
    }
}
