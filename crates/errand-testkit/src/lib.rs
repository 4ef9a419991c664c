//! Test helpers that use real parts: [`ServerProcess`] starts a real `errand serve` on a free
//! port and a data directory, and [`eventually`] polls a condition until a deadline instead
//! of sleeping for a guessed time.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod eventually;
mod pg_cluster;
mod postgres;
mod server_process;

pub use eventually::eventually;
pub use pg_cluster::{ClusterError, PgCluster};
pub use postgres::{pg_connect, postgres_url, PgDatabase, PgSchema, DEFAULT_POSTGRES_URL};
pub use server_process::{ServerProcess, TestkitError};
