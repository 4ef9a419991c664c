//! The wire format of errand's HTTP API: request bodies, responses and the error shape.
//!
//! The server deserialises these and the client serialises them, so both sides agree by
//! construction. Domain values ([`Job`](errand_core::Job), [`QueueInfo`](errand_core::QueueInfo))
//! travel as they are.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod batches;
mod definitions;
mod enqueue;
mod error_body;
mod events;
mod jobs;
mod logs;
mod nodes;
mod ordering;
pub mod plain_words;
mod queues;
mod schedules;
pub mod schema;
mod subscriptions;
mod tokens;
pub mod webhook_url;
mod worker;
mod workflows;

pub use batches::{
    job_ids as batch_job_ids, BatchJobsRequest, BatchList, BatchListQuery, BatchRequest,
    BatchResponse,
};
pub use definitions::{
    DefinitionList, DefinitionProblemView, DefinitionScheduleView, DefinitionView, HookView,
    InstanceLogQuery, LogGap, LogPage, LogQuery, RunDefinitionRequest, WatchView, MAX_LOG_PAGE,
};
pub use enqueue::{
    reject_nul, reject_nul_text, BatchEnqueueRequest, BatchEnqueueResponse, EnqueueLimits,
    EnqueueRequest, EnqueuedJob,
};
pub use error_body::{ErrorBody, ErrorDetail};
pub use events::{EventCutoff, EventGap, EventStreamQuery, CUTOFF_EVENT, GAP_EVENT};
pub use jobs::{AttemptList, JobListQuery, JobPage, JobWaitQuery};
pub use logs::{LogAppendRequest, LogAppendResponse, LogLineInput, MAX_LOG_LINES_PER_CALL};
pub use nodes::NodeList;
pub use ordering::{
    check_limit_name, check_name, check_session_state, LimitList, LimitRequest,
    RateKeyLimitRequest, SessionList, SessionListQuery, SessionStateRequest, WorkerList,
};
pub use queues::{CountResponse, DeadSelectionRequest, QueueList};
pub use schedules::{
    BackfillRequest, JobTemplateRequest, NextFireTimes, NextQuery, ScheduleList,
    SchedulePutRequest, ScheduleRequest,
};
pub use subscriptions::{
    DeliveryList, DeliveryListQuery, PauseSubscriptionRequest, SubscriptionList,
    SubscriptionPatchRequest, SubscriptionRequest, MAX_DESCRIPTION_LEN,
};
pub use tokens::{AuditPage, AuditQuery, TokenCreateRequest, TokenCreated, TokenList};
pub use worker::{
    ClaimRequest, ClaimResponse, ClaimedJobView, CompleteRequest, FailRequest, HeartbeatRequest,
    HeartbeatResponse, ReleaseRequest, SettleCompletion, SettleFailure, SettleRequest,
    SettleResponse, SettleResult,
};
pub use workflows::{
    check_template_name, ScheduledWorkflow, StepRequest, WorkflowList, WorkflowListQuery,
    WorkflowRequest, WorkflowTemplateList, WorkflowTemplateRequest, WorkflowTemplateView,
};
