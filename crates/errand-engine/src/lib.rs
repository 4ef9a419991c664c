//! The engine: everything errand does with jobs, over any [`Store`](errand_store::Store).
//!
//! The server and in-process callers go through [`Engine`], never the store directly, so
//! that every change that makes work ready wakes the workers waiting for it, and every
//! job that ends wakes those waiting for its result. Long-running services live in
//! [`maintenance`] and stop on a cancellation token.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod audit;
mod batches;
mod claim_combiner;
mod claim_wait;
mod config;
mod continuous;
mod dead;
mod deliveries;
mod due_clock;
mod engine;
mod event_feed;
mod event_log;
mod handoff;
mod insert_combiner;
mod job_events;
mod job_logs;
mod lanes;
pub mod maintenance;
mod marks;
mod metrics;
mod nodes;
mod ordering;
mod queue_waker;
mod queues;
mod schedule_admin;
mod schedules;
mod subscriptions;
mod tokens;
mod unheard_claim;
mod waiters;
mod worker_registry;
mod workflows;

pub use config::EngineConfig;
pub use engine::{ClaimRequest, Engine};
pub use event_feed::{StreamFilter, StreamItem};
pub use job_events::{JobEvent, LogAppended};
pub use metrics::scrape::CONTENT_TYPE as METRICS_CONTENT_TYPE;
pub use metrics::{KIND_LABEL_CAP, OVERFLOW_LABEL, PAIR_LABEL_CAP, QUEUE_LABEL_CAP};
pub use schedules::{SchedulePassReport, SLOT_RETENTION};
pub use tokens::{
    check_token, secret_hash, IssuedToken, TokenRejected, TokenRequest, CHECK_TTL, TOKEN_PREFIX,
    USE_EVERY,
};
