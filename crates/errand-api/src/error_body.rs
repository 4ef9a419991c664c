//! The one error shape every 4xx and 5xx answer has.

use serde::{Deserialize, Serialize};

/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A machine-readable code and a human message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `invalid_json`, `invalid_request`, `payload_too_large`, `not_found`,
    /// `conflict`, `contended`, `already_exists`, `constraint_violated`, `lease_lost`, `result_too_large`, `method_not_allowed`, `unavailable`, `internal`.
    pub code: String,
    /// What was wrong, in words.
    pub message: String,
}
