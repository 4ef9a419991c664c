//! A typed client for errand's HTTP API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = errand_client::Client::new("http://127.0.0.1:7878")?;
//! let job = client.enqueue(errand_api::EnqueueRequest::new("send_email")).await?;
//! let done = client.wait_job(job.id, std::time::Duration::from_secs(30)).await?;
//! println!("{} is {}", done.id, done.state);
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod client;
mod definitions;
mod error;
mod events;
mod flows;
mod job_host;
mod ordering;
mod subscriptions;
mod tls;
mod typed;

/// The API's request and answer types that the client's calls take and return, so that a
/// program depending on `errand-client` alone can name them (`EnqueueRequest` for every
/// enqueue option, the answer of `enqueue_many`, `attempts`).
pub use errand_api::{AttemptList, BatchEnqueueResponse, EnqueueRequest, EnqueuedJob};
/// The job as the server returns it, and what a program names in it (its id, state, kind,
/// queue, progress, an attempt, a lease token), so that a program depending on
/// `errand-client` alone can name them.
pub use errand_core::{Attempt, Job, JobId, JobKind, JobState, LeaseToken, Progress, QueueName};

pub use client::{Client, DEFAULT_CALL_TIMEOUT};
pub use definitions::{LogFollow, LogStreamItem};
pub use error::ClientError;
pub use events::{EventFollow, EventQuery, EventStreamItem};
pub use job_host::{host_error, HttpJobHost};
pub use tls::CA_CERT_ENV;
pub use typed::{IntoEnqueueRequest, JobType, WaitError, LIBRARY_ROUTES};
