//! Run errand jobs in Rust.
//!
//! A job kind is a Rust type ([`JobType`]); a handler is an `async fn(JobContext, Kind) ->
//! Result<R, JobError>`; a [`Worker`] claims jobs of its registered kinds from one queue
//! and runs up to N handlers at once, through any [`JobHost`]: the HTTP worker protocol
//! ([`errand_client::HttpJobHost`]) or, for an application that embeds errand, the engine
//! of its own process (`errand_server::scripts::EngineHost`), with the same handlers.
//!
//! What the worker does for a handler:
//! - claims only as many jobs as it has free slots, with long polls;
//! - heartbeats every third of the lease from the claim until the settlement is confirmed;
//!   a lost lease (expired and taken elsewhere, the job cancelled, or no heartbeat through
//!   for a whole lease) fires [`JobContext::lease_lost`] and the attempt's outcome is not
//!   settled;
//! - settles on the next claim when it can (the claim that refills a freed slot carries the
//!   settlements of the jobs that freed it: one round trip per cycle), otherwise in batches:
//!   a settlement waits at most the settle window (2 ms) for others;
//!   what the host cannot take now is sent again while the lease holds; a call refused
//!   whole is sent again one settlement at a time, so one bad entry costs only itself;
//! - a handler's [`JobError::retry`] fails the attempt with the server's backoff,
//!   [`JobError::retry_in`] with a delay of its own, [`JobError::dead`] makes the job dead;
//!   a handler that panics fails the attempt (retried); a job with a `timeout` that its
//!   handler overruns is stopped and failed (retried);
//! - a payload that does not deserialise as the kind's type makes the job **dead** at once
//!   with the serde error: retrying the same payload cannot succeed;
//! - on shutdown it stops claiming (gives back what a claim in flight still hands over),
//!   lets running handlers finish within the grace period (their results are settled),
//!   then aborts what still runs and gives it back with the host's `release` (uncounted,
//!   over HTTP and in-process: the attempt is forgotten and the job is `available` at
//!   once, so a job on its last attempt runs again), reports which, and returns within
//!   the grace period plus [`SHUTDOWN_MARGIN`];
//! - a host that is away is called again with capped, jittered backoff.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod attempt;
mod backoff;
mod context;
mod error;
#[cfg(test)]
mod fake_host;
mod handler;
mod lease;
mod outbox;
mod settler;
mod shutdown;
mod storable;
mod worker;

pub use context::JobContext;
pub use errand_client::{JobType, LIBRARY_ROUTES};
/// The types a handler's [`JobContext`] answers with (`ctx.id()`, `ctx.lease_token()`), so
/// that a worker can name them without depending on errand's core crate.
pub use errand_core::{JobId, LeaseToken};
pub use errand_runner::host::{HostError, JobHost};
pub use error::{Failure, JobError, WorkerError};
pub use handler::Handler;
pub use shutdown::{ShutdownReport, SHUTDOWN_MARGIN};
pub use tokio_util::sync::CancellationToken;
pub use worker::Worker;
