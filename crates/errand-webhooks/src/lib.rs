//! Outgoing webhooks: a job's callback (`callback_url`) and subscriptions, signed the
//! Standard Webhooks way and sent at least once by any node.
//!
//! - [`signature`]: the `webhook-*` headers, and `verify` (the reference for receivers).
//! - [`address_policy`]: which addresses may be connected to.
//! - [`sender`]: one POST, to an address the policy allows, bounded in time and size.
//! - [`fanout`]: turns the event log into subscription deliveries, on one node at a time.
//! - [`delivery_worker`]: claims due deliveries, sends them and settles them, on every node.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod address_policy;
pub mod delivery_worker;
pub mod fanout;
pub mod sender;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use errand_engine::Engine;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use address_policy::AddressPolicy;
pub use sender::{Sender, SenderConfig};
pub use signature::{SecretError, SigningKey};

/// Everything the webhook services need, from the server's settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Signing keys, newest first; every delivery carries a signature by each.
    pub keys: Vec<SigningKey>,
    /// Which addresses deliveries may go to.
    pub policy: AddressPolicy,
    /// Bound on one attempt, connection to answer.
    pub timeout: Duration,
    /// Wait before the first retry; doubles each time, capped at an hour.
    pub backoff: Duration,
    /// How long after it was recorded a delivery is retried before it is given up.
    pub retry_for: Duration,
    /// A subscription whose attempts fail this many times in a row is paused.
    pub pause_after: u32,
    /// Deliveries sent at once by one node.
    pub concurrency: usize,
}

/// Default bound on one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait before the first retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Default time a delivery is retried for.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// Default count of failures in a row that pauses a subscription.
pub const DEFAULT_PAUSE_AFTER: u32 = 50;
/// Default deliveries sent at once per node.
pub const DEFAULT_CONCURRENCY: usize = 16;

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            policy: AddressPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            backoff: DEFAULT_BACKOFF,
            retry_for: DEFAULT_RETRY_FOR,
            pause_after: DEFAULT_PAUSE_AFTER,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Starts the fan-out and the delivery worker; they stop when `token` is cancelled. Without
/// keys nothing can be signed, so nothing starts (the API refuses callbacks and
/// subscriptions then).
pub fn spawn(
    engine: Arc<Engine>,
    settings: WebhookSettings,
    token: CancellationToken,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    if settings.keys.is_empty() {
        return set;
    }
    let sender = Arc::new(Sender::new(SenderConfig {
        keys: settings.keys.clone(),
        policy: settings.policy.clone(),
        timeout: settings.timeout,
    }));
    set.spawn(fanout::run(
        engine.clone(),
        fanout::FanoutConfig::default(),
        token.clone(),
    ));
    set.spawn(delivery_worker::run(
        engine,
        sender,
        delivery_worker::WorkerConfig::from_settings(&settings),
        token,
    ));
    set
}
