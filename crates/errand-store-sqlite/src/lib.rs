//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! All writes go through one writer thread that group-commits: concurrent enqueues, claims
//! and completions gathered while the previous commit ran are committed together in one
//! transaction, and each caller is answered only once that commit is on disk. Reads use a
//! small pool of read-only connections and never wait for the writer.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod audit;
mod batch;
mod claim;
mod definition_switch;
mod delivery_queue;
mod delivery_record;
mod event_log;
mod explain;
mod fairness;
mod fault;
mod file_watch;
mod flow;
mod flow_end;
mod gate;
mod instance;
mod job_log;
mod job_read;
mod job_row;
mod job_settle;
mod job_write;
mod limit;
mod maintenance;
mod mark;
mod named_lease;
mod node;
mod queue;
mod queue_row;
mod read_pool;
mod restore;
mod schedule;
mod schema;
mod session;
mod store;
mod subscription;
mod token;
mod transition;
mod wake;
mod worker;
mod workflow;
mod writer;

pub use store::{Durability, SqliteOptions, SqliteStore};
