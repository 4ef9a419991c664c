//! What every handler can reach.

use std::sync::Arc;

use errand_api::EnqueueLimits;
use errand_engine::Engine;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

use crate::SitePolicy;

/// Request limits; bad sizes get a 413 before any work is done.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Largest request body in bytes (a batch enqueue is the big one).
    pub max_request_bytes: usize,
    /// Largest job payload in bytes.
    pub max_payload_bytes: usize,
    /// Long polls (a claim with `wait_ms`, a job read with `?wait=`) waiting at once;
    /// past it they get 503 `busy` with `Retry-After`.
    pub max_waiting: usize,
    /// Event streams (`GET /v1/events`) open at once; past it they get 503 `busy` with
    /// `Retry-After`.
    pub max_event_streams: usize,
}

impl Default for ServerLimits {
    /// 1 MiB per payload is generous for job arguments (large data belongs in object
    /// storage, referenced by the payload); 64 MiB per request fits a 10,000-job batch of
    /// typical payloads. A waiting call costs a registry entry and its connection (no
    /// polling), so 20,000 of them (10,000 callers waiting for results beside a large
    /// fleet's claims) stay well under half the default connection cap; event streams
    /// likewise.
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024 * 1024,
            max_payload_bytes: 1024 * 1024,
            max_waiting: 20_000,
            max_event_streams: 20_000,
        }
    }
}

/// Shared state of the handlers, behind one reference count: axum clones the state for
/// each extractor and middleware layer of every request, and a clone of one pointer is one
/// atomic count where a clone of the fields was one per `Arc` among them (profiled at 64
/// clients: dropping those clones alone took about 3 % of the server's CPU).
#[derive(Clone)]
pub struct AppState(Arc<AppStateFields>);

/// What [`AppState`] holds.
#[derive(Clone)]
pub struct AppStateFields {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Request limits.
    pub limits: ServerLimits,
    /// Which hosts and origins the server answers (cross-site and DNS-rebinding checks).
    pub site: Arc<SitePolicy>,
    /// The jobs directory's definitions (empty when the server has none).
    pub scripts: Arc<crate::scripts::Scripts>,
    /// Whether webhook secrets are configured: without them callbacks and subscriptions are
    /// refused (nothing could be signed).
    pub webhooks_enabled: bool,
    /// How callers authenticate.
    pub auth: Arc<crate::AuthConfig>,
    /// Places for long polls; one is held while a call waits.
    waiting: Arc<Semaphore>,
    /// Places for event streams; one is held while a stream is open.
    streams: Arc<Semaphore>,
}

impl std::ops::Deref for AppState {
    type Target = AppStateFields;

    fn deref(&self) -> &AppStateFields {
        &self.0
    }
}

impl AppState {
    /// The handlers' state over `engine`.
    pub fn new(engine: Arc<Engine>, limits: ServerLimits, site: Arc<SitePolicy>) -> Self {
        Self(Arc::new(AppStateFields {
            engine,
            limits,
            site,
            scripts: crate::scripts::Scripts::none(),
            webhooks_enabled: false,
            auth: Arc::new(crate::AuthConfig::off()),
            waiting: Arc::new(Semaphore::new(limits.max_waiting)),
            streams: Arc::new(Semaphore::new(limits.max_event_streams)),
        }))
    }

    /// The same state with `change` made to its fields (while it is being set up).
    fn changed(self, change: impl FnOnce(&mut AppStateFields)) -> Self {
        let mut fields = Arc::unwrap_or_clone(self.0);
        change(&mut fields);
        Self(Arc::new(fields))
    }

    /// The same state serving the definitions of a loaded jobs directory.
    pub fn with_scripts(self, scripts: Arc<crate::scripts::Scripts>) -> Self {
        self.changed(|s| s.scripts = scripts)
    }

    /// The same state with authentication set up.
    pub fn with_auth(self, auth: crate::AuthConfig) -> Self {
        self.changed(|s| s.auth = Arc::new(auth))
    }

    /// The same state with webhook signing configured (callbacks and subscriptions allowed).
    pub fn with_webhooks(self, enabled: bool) -> Self {
        self.changed(|s| s.webhooks_enabled = enabled)
    }

    /// A place for a call that is about to wait, or 503 `busy` when every place is taken.
    /// Refusing (rather than answering at once without waiting) tells a worker to back
    /// off for `Retry-After` instead of polling again in a tight loop.
    pub(crate) fn wait_place(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.waiting.clone().try_acquire_owned().map_err(|_| {
            ApiError::busy(format!(
                "{} calls are already waiting; retry",
                self.limits.max_waiting
            ))
        })
    }

    /// A place for an event stream, or 503 `busy` when every place is taken.
    pub(crate) fn stream_place(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            ApiError::busy(format!(
                "{} event streams are already open; retry",
                self.limits.max_event_streams
            ))
        })
    }

    pub(crate) fn enqueue_limits(&self) -> EnqueueLimits {
        EnqueueLimits {
            max_payload_bytes: self.limits.max_payload_bytes,
        }
    }
}
