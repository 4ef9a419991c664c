//! The audit trail: admin and destructive actions, recorded with who, what, when and from
//! where (`GET /v1/audit`, `errand audit`).

use errand_core::{AuditEntry, NewAuditEntry};
use errand_store::{AuditListParams, StoreError};

use crate::Engine;

impl Engine {
    /// Records an action, durably, before its caller answers.
    ///
    /// # Errors
    /// The store's error.
    pub async fn audit_record(&self, entry: NewAuditEntry) -> Result<AuditEntry, StoreError> {
        self.store().audit_append(entry).await
    }

    /// A page of the trail, newest first.
    ///
    /// # Errors
    /// The store's error.
    pub async fn audit_list(&self, params: AuditListParams) -> Result<Vec<AuditEntry>, StoreError> {
        self.store().audit_list(params).await
    }
}
