//! The nodes sharing the store, and this node's readiness.

use errand_core::NodeInfo;
use errand_store::StoreError;

use crate::maintenance::{NODE_DEAD_AFTER, NODE_FORGET_AFTER};
use crate::Engine;

impl Engine {
    /// Every node seen within [`NODE_FORGET_AFTER`]; one silent for [`NODE_DEAD_AFTER`] is
    /// dead.
    ///
    /// # Errors
    /// The store's error.
    pub async fn node_list(&self) -> Result<Vec<NodeInfo>, StoreError> {
        self.store()
            .node_list(NODE_DEAD_AFTER, NODE_FORGET_AFTER)
            .await
    }

    /// Answers when the store is reachable and writable: this node can take work.
    ///
    /// # Errors
    /// `Unavailable` when it cannot.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.store().ping().await
    }

    /// How far the store's schema is migrated beside what this build expects (`/readyz`).
    ///
    /// # Errors
    /// The store's error when it cannot be read.
    pub async fn schema_version(&self) -> Result<errand_store::SchemaVersion, StoreError> {
        self.store().schema_version().await
    }

    /// True once this node began shutting down (its drain included): readiness fails so
    /// load balancers stop sending it requests while it drains.
    pub fn shutting_down(&self) -> bool {
        self.draining()
    }

    /// Answers when this process can still do its work once the store is reachable: what
    /// only a restart fixes (the SQLite writer thread gone) fails it, a slow or unreachable
    /// database does not (that is [`Engine::ready`]).
    ///
    /// # Errors
    /// `Unavailable` naming what stopped.
    pub fn live(&self) -> Result<(), StoreError> {
        self.store().live()
    }
}
