//! A typed client for errand's HTTP API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), errand_client::ClientError> {
//! let client = errand_client::Client::new("http://127.0.0.1:7878")?;
//! let job = client.enqueue(&errand_api::EnqueueRequest::new("send_email")).await?;
//! let done = client.job(job.id, Some("30s")).await?;
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

pub use client::Client;
pub use definitions::{LogFollow, LogStreamItem};
pub use error::ClientError;
pub use events::{EventFollow, EventQuery, EventStreamItem};
pub use job_host::{host_error, HttpJobHost};
