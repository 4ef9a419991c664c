#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
//! The script host: what turns a folder in the jobs directory into runs.
//!
//! - [`definition`]: a job definition as loaded from `job.toml` or a WebJobs folder, and
//!   [`catalog`], which loads the jobs directory and reloads it when it changes.
//! - [`process`]: one run of a definition as a real process: its own process group, the
//!   payload on stdin, the control channel, stdout and stderr as log lines, the stop
//!   sequence and what the process cost.
//! - [`triggers`]: what else enqueues a definition's jobs (a watched directory, a signed
//!   webhook).
//! - [`host`]: the seam to whoever holds the jobs: the engine inside `errand serve`, the
//!   HTTP API inside `errand worker`. The same runtime runs behind both.

pub mod catalog;
pub mod definition;
pub mod host;
pub mod process;
pub mod runner;
pub mod triggers;
