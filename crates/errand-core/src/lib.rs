#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
//! The errand domain model: what a job is, which states it moves through, how names are
//! validated and how long a failed job waits before its next attempt.
//!
//! This crate does no I/O. Stores, the engine, the server and the client all speak in
//! these types, so a rule written here holds everywhere.

pub mod audit;
pub mod backoff;
pub mod batch;
pub mod delivery;
pub mod duration;
pub mod event;
pub mod explain;
pub mod flow;
pub mod ids;
pub mod instance;
pub mod job;
pub mod limits;
pub mod log_line;
pub mod names;
pub mod node;
pub mod number;
pub mod ordering;
mod panic_message;
pub mod private_fs;
pub mod queue;
pub mod reply;
pub mod rescue;
pub mod restore;
pub mod run_report;
pub mod schedule;
pub mod schedule_plan;
pub mod schedule_spec;
pub mod secrets;
pub mod session;
pub mod state;
pub mod text_schema;
pub mod throttle;
pub mod time;
pub mod token;
pub mod validation;
pub mod worker;
pub mod workflow;
pub mod workflow_build;

pub use audit::{AuditEntry, NewAuditEntry};
pub use backoff::{AfterFailure, RetryPolicy};
pub use delivery::{
    ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryId, DeliveryState, NewDelivery,
    NewSubscription, Subscription, SubscriptionId, SubscriptionPatch, SubscriptionState,
};
pub use event::{Event, EventBody, EventFilter, EventId, EventType, JobSnapshot};
pub use ids::{BatchId, JobId, LeaseToken, WorkflowId};
pub use instance::{InstanceRecord, InstanceState};
pub use job::{Attempt, AttemptOutcome, EndNotice, Job, NewJob, Progress};
pub use log_line::{LogEntry, LogStream, NewLogLine};
pub use names::{JobKind, QueueName, ScheduleName};
pub use node::{NodeAbout, NodeId, NodeInfo, NodeStatus, StoreAbout};
pub use panic_message::panic_message;
pub use queue::{QueueInfo, StateCounts};
pub use rescue::{Rescue, Stuck};
pub use run_report::RunReport;
pub use secrets::Secrets;
pub use state::JobState;
pub use time::Millis;
pub use token::{ApiToken, NewToken, Scope, StoredToken, TokenId};
pub use validation::ValidationError;
