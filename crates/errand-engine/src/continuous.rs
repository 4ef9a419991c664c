//! What continuous jobs share across the cluster: named leases (singletons), instance
//! records, and the stop/start switch of each definition.

use std::time::Duration;

use errand_core::{InstanceRecord, NodeId};
use errand_store::{LeaseAcquireParams, StoreError};

use crate::Engine;

impl Engine {
    /// Takes or renews a named lease for `holder` until `ttl` from now (store clock); false
    /// when another holder has it and it has not expired.
    ///
    /// # Errors
    /// The store's error.
    pub async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store()
            .lease_acquire(LeaseAcquireParams {
                name: name.to_string(),
                holder: holder.to_string(),
                ttl,
            })
            .await
    }

    /// Gives a named lease up, if `holder` has it.
    ///
    /// # Errors
    /// The store's error.
    pub async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.store().lease_release(name, holder).await
    }

    /// Records (or renews) a continuous instance, so every node and the API see it. Renew
    /// it well within [`EngineConfig::instance_stale_after`](crate::EngineConfig), or the
    /// cleaner takes it for the record of a dead node.
    ///
    /// # Errors
    /// The store's error.
    pub async fn instance_put(&self, record: InstanceRecord) -> Result<(), StoreError> {
        self.store().instance_put(record).await
    }

    /// The instances of one definition (or of all) on every node.
    ///
    /// # Errors
    /// The store's error.
    pub async fn instances(
        &self,
        definition: Option<String>,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        self.store().instance_list(definition).await
    }

    /// Forgets an instance (its definition was removed, or its node stops cleanly).
    ///
    /// # Errors
    /// The store's error.
    pub async fn instance_delete(
        &self,
        node: NodeId,
        instance: uuid::Uuid,
    ) -> Result<(), StoreError> {
        self.store().instance_delete(node, instance).await
    }

    /// Records that a definition is stopped (or started again), for every node and across
    /// restarts.
    ///
    /// # Errors
    /// The store's error.
    pub async fn definition_switch_put(&self, name: &str, stopped: bool) -> Result<(), StoreError> {
        self.store()
            .definition_switch_put(name.to_string(), stopped)
            .await
    }

    /// Every recorded definition switch: `(name, stopped)`, by name.
    ///
    /// # Errors
    /// The store's error.
    pub async fn definition_switches(&self) -> Result<Vec<(String, bool)>, StoreError> {
        self.store().definition_switch_list().await
    }
}
