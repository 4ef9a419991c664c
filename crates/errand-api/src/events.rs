//! `GET /v1/events`: the query of the event stream and the items it sends besides events.

use errand_core::EventId;
use serde::{Deserialize, Serialize};

/// The SSE `event:` name of the item that ends a stream whose consumer fell behind.
pub const CUTOFF_EVENT: &str = "cutoff";
/// The SSE `event:` name of the item that says events were pruned before they were sent.
pub const GAP_EVENT: &str = "gap";

/// `GET /v1/events` filters and cursor. Every filter may be repeated or comma-separated
/// (`?queue=a,b` or `?queue=a&queue=b`: either); different filters must all pass.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventStreamQuery {
    /// Only events of jobs in these queues.
    pub queue: Option<String>,
    /// Only events of jobs of these kinds.
    pub kind: Option<String>,
    /// Only events of these jobs (a `schedule.fired` passes for the job it enqueued).
    pub job: Option<String>,
    /// Only events of jobs carrying any of these tags.
    pub tag: Option<String>,
    /// Only these event types (`job.enqueued`, `job.started`, `job.progress`,
    /// `job.succeeded`, `job.failed`, `job.dead`, `job.cancelled`, `schedule.fired`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Start after this event id (the `Last-Event-ID` header wins when both are given).
    /// Without either the stream starts now, with no history.
    #[param(value_type = Option<String>, example = "1234-1")]
    pub after: Option<String>,
}

/// The data of a `cutoff` item, a stream's last: its consumer fell too far behind (or
/// the server is stopping). Reconnect with `Last-Event-ID: resume_after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventCutoff {
    /// The last event the stream handled; resume after it (absent: resume as you started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub resume_after: Option<EventId>,
    /// Why the stream ended.
    pub reason: String,
}

/// The data of a `gap` item: the events after the cursor up to `missed_through` were
/// pruned (older than the retention window) before this stream could send them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventGap {
    /// The newest event that is gone; the stream goes on after it.
    #[schema(value_type = String)]
    pub missed_through: EventId,
}
