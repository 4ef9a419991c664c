//! What every handler can reach.

use std::sync::Arc;

use errand_api::EnqueueLimits;
use errand_engine::Engine;

use crate::SitePolicy;

/// Request limits; bad sizes get a 413 before any work is done.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Largest request body in bytes (a batch enqueue is the big one).
    pub max_request_bytes: usize,
    /// Largest job payload in bytes.
    pub max_payload_bytes: usize,
}

impl Default for ServerLimits {
    /// 1 MiB per payload is generous for job arguments (large data belongs in object
    /// storage, referenced by the payload); 64 MiB per request fits a 10,000-job batch of
    /// typical payloads.
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024 * 1024,
            max_payload_bytes: 1024 * 1024,
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Request limits.
    pub limits: ServerLimits,
    /// Which hosts and origins the server answers (cross-site and DNS-rebinding checks).
    pub site: Arc<SitePolicy>,
}

impl AppState {
    pub(crate) fn enqueue_limits(&self) -> EnqueueLimits {
        EnqueueLimits {
            max_payload_bytes: self.limits.max_payload_bytes,
        }
    }
}
