//! The job type shared by the web example (which enqueues it) and the worker example
//! (which runs it): one Rust type per job kind.

use serde::{Deserialize, Serialize};

/// Sends a welcome email.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendWelcome {
    /// Who to write to.
    pub to: String,
    /// Their name, for the greeting.
    pub name: String,
}

impl errand_client::JobType for SendWelcome {
    const KIND: &'static str = "send_welcome";

    /// One welcome per address: a second signup within the server's idempotency window
    /// gets the first job back instead of a second email.
    fn configure(&self, request: &mut errand_client::EnqueueRequest) {
        request.idempotency_key = Some(format!("welcome:{}", self.to));
        request.max_attempts = Some(5);
    }
}

/// What the worker answers for a sent email.
#[derive(Debug, Serialize, Deserialize)]
pub struct Sent {
    /// The provider's message id.
    pub message_id: String,
}

/// The errand server: `ERRAND_URL`, else the local default.
pub fn server_url() -> String {
    std::env::var("ERRAND_URL").unwrap_or_else(|_| "http://127.0.0.1:7878".into())
}
