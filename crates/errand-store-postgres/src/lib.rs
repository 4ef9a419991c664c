//! The PostgreSQL store: several `errand serve` nodes share one database.
//!
//! Claims lease many jobs per statement with `FOR UPDATE SKIP LOCKED`; batch enqueue and
//! batch completion are one statement each over `UNNEST` arrays; no transaction stays open
//! while a job runs. When jobs become available the node that made them so sends a
//! `NOTIFY` after commit (if it has heard another node lately), and a dedicated `LISTEN`
//! connection on every node turns those notifications into wake-ups.
//! Workflows, continuations and batches ride on the same transactions: a job's end
//! advances its workflow (under the workflow row's lock), releases or dooms the jobs that
//! wait for it, and counts in its batch (under the batch row's lock), so racing ends on
//! several nodes release a join or complete a batch exactly once.
//! All time arithmetic uses the database clock (`errand_now()`). Migrations run at start
//! under an advisory lock. A lost connection is replaced by the pool; meanwhile calls fail
//! with `Unavailable` and nothing acknowledged is lost.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod array_rows;
mod audit;
mod batch_notice;
mod batch_store;
mod claim_plan;
mod claim_slots;
mod connect_error;
mod definition_switch;
mod delivery_queue;
mod delivery_record;
mod event_log;
#[cfg(test)]
mod event_order;
mod explain;
mod fairness;
mod fault;
mod flow_end;
mod flow_insert;
mod gate;
mod goodbye;
mod instance;
mod job_log;
mod job_read;
mod job_row;
mod job_settle;
mod job_write;
#[cfg(test)]
mod lease_plans;
mod limit;
mod listener;
mod maintenance;
mod mark;
mod named_lease;
mod node;
mod notifier;
#[cfg(test)]
mod one_backend;
mod peers;
mod pipelined_tx;
mod plan_mode;
mod planner_stats;
mod queue;
mod restore;
mod schedule;
mod schema;
mod session;
mod sole_task;
mod store;
mod subscription;
mod tls;
mod token;
mod transition;
mod wake;
mod worker;
mod workflow_apply;
mod workflow_store;

pub use connect_error::{ConnectError, PgTarget};
pub use store::{PgOptions, PgStore};
pub use tls::{pg_config, MakeRustls, RustlsConnect, RustlsStream, SslMode};
