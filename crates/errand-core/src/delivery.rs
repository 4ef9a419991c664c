//! Deliveries of events over HTTP: a job's callback (`callback_url`) and subscriptions
//! (publish-subscribe), both signed the Standard Webhooks way and retried until they land
//! or their time runs out.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{EventBody, EventFilter, EventType, JobSnapshot};
use crate::ids::uuid_id;
use crate::{Job, JobId, JobKind, Millis, QueueName, ValidationError};

uuid_id!(
    /// A delivery's id; also its `webhook-id`, the same on every attempt, so a receiver
    /// can drop repeats.
    DeliveryId,
    "delivery id"
);
uuid_id!(
    /// A subscription's id.
    SubscriptionId,
    "subscription id"
);

/// A delivery to make: recorded in the store, then sent (and retried) by any node.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// Its id.
    pub id: DeliveryId,
    /// The subscription it is for; `None` for a job's callback.
    pub subscription: Option<SubscriptionId>,
    /// The job the event is about.
    pub job: Option<JobId>,
    /// What happened.
    pub event_type: EventType,
    /// Where to POST.
    pub url: String,
    /// The exact body signed and sent on every attempt.
    pub body: String,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; an attempt is due at `next_at` (or under way).
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Every attempt failed until its retry time ran out.
    Failed,
}

impl DeliveryState {
    /// The name stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// A name no version of errand writes (a corrupt record).
    pub fn from_stored(s: &str) -> Result<Self, ValidationError> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "succeeded" => Ok(DeliveryState::Succeeded),
            "failed" => Ok(DeliveryState::Failed),
            other => Err(ValidationError::new(
                "delivery state",
                format!("`{other}` is not a delivery state"),
            )),
        }
    }
}

/// One try at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub attempt: u32,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed (refused address, timeout, connection error, non-2xx status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the receiver's answer (at most 1 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// A delivery and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Its id (the `webhook-id` header).
    pub id: DeliveryId,
    /// The subscription it is for; absent for a job's callback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionId>,
    /// The job the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    /// What happened.
    pub event_type: EventType,
    /// Where it goes.
    pub url: String,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_at: Option<Timestamp>,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was recorded.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Its attempts, first first.
    pub history: Vec<DeliveryAttempt>,
}

/// A delivery handed to a sender, leased so that no other node sends it meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// The delivery (its attempts so far included).
    pub delivery: Delivery,
    /// The body to send.
    pub body: String,
    /// Fences the settle: a sender whose lease ran out cannot settle.
    pub lease_token: crate::LeaseToken,
}

/// Whether a subscription receives deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// Receives matching events.
    Active,
    /// Receives nothing until resumed (by hand, or after its endpoint kept failing).
    Paused,
}

impl SubscriptionState {
    /// The name stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Active => "active",
            SubscriptionState::Paused => "paused",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// A name no version of errand writes (a corrupt record).
    pub fn from_stored(s: &str) -> Result<Self, ValidationError> {
        match s {
            "active" => Ok(SubscriptionState::Active),
            "paused" => Ok(SubscriptionState::Paused),
            other => Err(ValidationError::new(
                "subscription state",
                format!("`{other}` is not a subscription state"),
            )),
        }
    }
}

/// A URL that receives matching events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    /// Where events are POSTed.
    pub url: String,
    /// Which event types (never empty).
    pub events: Vec<EventType>,
    /// Only jobs of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueName>,
    /// Only jobs of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// Only jobs with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Active or paused.
    pub state: SubscriptionState,
    /// Why it is paused (by hand, or the failures that paused it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// Failed attempts in a row since the last success.
    pub consecutive_failures: u32,
    /// When it was created; it receives events from then on.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl Subscription {
    /// The filter its events pass.
    pub fn filter(&self) -> EventFilter {
        EventFilter {
            types: self.events.clone(),
            queue: self.queue.clone(),
            kind: self.kind.clone(),
            job: None,
            tag: self.tag.clone(),
        }
    }

    /// Whether an event is delivered to it: active, created no later than the event, and
    /// the event passes its filter.
    pub fn wants(&self, event: &EventBody) -> bool {
        self.state == SubscriptionState::Active
            && event.at >= self.created_at
            && self.filter().matches(event)
    }
}

/// A subscription to create (validated).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    /// Its id.
    pub id: SubscriptionId,
    /// Where events are POSTed.
    pub url: String,
    /// Which event types (never empty).
    pub events: Vec<EventType>,
    /// Only jobs of this queue.
    pub queue: Option<QueueName>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Free text for people.
    pub description: Option<String>,
}

/// A change to a subscription; `None` leaves a field as it is. Resuming clears the pause
/// reason and the failure count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionPatch {
    /// New URL.
    pub url: Option<String>,
    /// New event types (never empty).
    pub events: Option<Vec<EventType>>,
    /// New queue filter (`Some(None)` removes it).
    pub queue: Option<Option<QueueName>>,
    /// New kind filter (`Some(None)` removes it).
    pub kind: Option<Option<JobKind>>,
    /// New tag filter (`Some(None)` removes it).
    pub tag: Option<Option<String>>,
    /// New description (`Some(None)` removes it).
    pub description: Option<Option<String>>,
    /// Pause (with the reason) or resume.
    pub state: Option<(SubscriptionState, Option<String>)>,
}

impl SubscriptionPatch {
    /// Applies the patch to `sub` (everything but `updated_at`, which is the store's): the
    /// one reading of patch semantics both stores use. Pausing keeps the failure count and
    /// sets the given reason; resuming clears the reason and the failure count.
    pub fn apply_to(self, sub: &mut Subscription) {
        if let Some(url) = self.url {
            sub.url = url;
        }
        if let Some(events) = self.events {
            sub.events = events;
        }
        if let Some(queue) = self.queue {
            sub.queue = queue;
        }
        if let Some(kind) = self.kind {
            sub.kind = kind;
        }
        if let Some(tag) = self.tag {
            sub.tag = tag;
        }
        if let Some(description) = self.description {
            sub.description = description;
        }
        match self.state {
            None => {}
            Some((SubscriptionState::Paused, reason)) => {
                sub.state = SubscriptionState::Paused;
                sub.paused_reason = reason;
            }
            Some((SubscriptionState::Active, _)) => {
                sub.state = SubscriptionState::Active;
                sub.paused_reason = None;
                sub.consecutive_failures = 0;
            }
        }
    }
}

/// Why a subscription was paused by its failures: the count and the last error, so the
/// person who resumes it knows what to fix. Both stores write exactly this.
pub fn failure_pause_reason(failures: u32, last_error: &str) -> String {
    format!("paused after {failures} failed deliveries in a row; last: {last_error}")
}

impl DeliveryAttempt {
    /// What went wrong in this attempt, for `last_error` and a pause reason: its error, or
    /// its status when it has no error text.
    pub fn failure_text(&self) -> String {
        match (&self.error, self.status) {
            (Some(e), _) => e.clone(),
            (None, Some(status)) => format!("HTTP status {status}"),
            (None, None) => "the attempt failed".to_owned(),
        }
    }
}

/// The body of a webhook: `{"type", "timestamp", "data"}` as Standard Webhooks suggests,
/// `data` holding the job (`job.*`) or the slot (`schedule.fired`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookBody {
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the event happened.
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    /// What it is about.
    pub data: Value,
}

impl WebhookBody {
    /// The body delivering `event`.
    pub fn of(event: &EventBody) -> Self {
        let data = match (&event.job, &event.schedule, &event.batch) {
            (Some(job), _, _) => serde_json::json!({ "job": job }),
            (None, Some(fired), _) => serde_json::json!({ "schedule": fired }),
            (None, None, Some(batch)) => serde_json::json!({ "batch": batch }),
            (None, None, None) => Value::Object(serde_json::Map::new()),
        };
        WebhookBody {
            event_type: event.event_type,
            timestamp: event.at,
            data,
        }
    }

    /// The exact text sent.
    pub fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The callback a job that just ended owes, when it has a `callback_url`: its final state
/// with the whole result (not cut like an event's), recorded in the transaction that ended
/// the job. `None` when the job has no callback or has not ended.
pub fn callback_for(job: &Job, now: Millis) -> Option<NewDelivery> {
    let url = job.callback_url.as_ref()?;
    if !job.state.is_final() {
        return None;
    }
    let ty = EventType::for_end(job.state)?;
    let mut snapshot = JobSnapshot::of(job, ty);
    if ty == EventType::JobSucceeded {
        snapshot.result = job.result.clone();
        snapshot.result_bytes = None;
    }
    if ty == EventType::JobDead {
        snapshot.error = job.error.clone();
    }
    let body = WebhookBody {
        event_type: ty,
        timestamp: crate::time::to_timestamp(now),
        data: serde_json::json!({ "job": snapshot }),
    };
    Some(NewDelivery {
        id: DeliveryId::new(),
        subscription: None,
        job: Some(job.id),
        event_type: ty,
        url: url.clone(),
        body: body.text(),
    })
}

/// The callback a batch that just completed owes, when it has a `callback_url`: the batch
/// (`data.batch`, as `GET /v1/batches/{id}` shows it) under `batch.completed`, recorded in
/// the transaction that completed it.
pub fn batch_callback(batch: &crate::batch::Batch, now: Millis) -> Option<NewDelivery> {
    let url = batch.callback_url.as_ref()?;
    let body = WebhookBody::of(&EventBody::batch_completed(
        serde_json::to_value(batch).unwrap_or(Value::Null),
        now,
    ));
    Some(NewDelivery {
        id: DeliveryId::new(),
        subscription: None,
        job: None,
        event_type: EventType::BatchCompleted,
        url: url.clone(),
        body: body.text(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused_sub() -> Subscription {
        let now = Timestamp::UNIX_EPOCH;
        Subscription {
            id: SubscriptionId::new(),
            url: "https://a.example/hook".into(),
            events: vec![EventType::JobDead],
            queue: Some(QueueName::parse("q").expect("queue")),
            kind: None,
            tag: Some("t".into()),
            description: Some("d".into()),
            state: SubscriptionState::Paused,
            paused_reason: Some(failure_pause_reason(5, "HTTP status 500")),
            consecutive_failures: 5,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_a_resume_clears_the_failures() {
        let mut sub = paused_sub();
        SubscriptionPatch {
            queue: Some(None),
            description: Some(Some("new".into())),
            ..SubscriptionPatch::default()
        }
        .apply_to(&mut sub);
        assert_eq!(sub.queue, None);
        assert_eq!(sub.description.as_deref(), Some("new"));
        assert_eq!(sub.tag.as_deref(), Some("t"));
        assert_eq!(sub.state, SubscriptionState::Paused, "untouched");
        assert_eq!(sub.consecutive_failures, 5);
        assert_eq!(
            sub.paused_reason.as_deref(),
            Some("paused after 5 failed deliveries in a row; last: HTTP status 500")
        );

        SubscriptionPatch {
            state: Some((SubscriptionState::Active, Some("ignored".into()))),
            ..SubscriptionPatch::default()
        }
        .apply_to(&mut sub);
        assert_eq!(sub.state, SubscriptionState::Active);
        assert_eq!(sub.paused_reason, None);
        assert_eq!(sub.consecutive_failures, 0);
    }

    #[test]
    fn an_attempt_says_why_it_failed() {
        let mut a = DeliveryAttempt {
            attempt: 1,
            at: Timestamp::UNIX_EPOCH,
            duration_ms: 3,
            status: Some(503),
            error: None,
            response: None,
        };
        assert_eq!(a.failure_text(), "HTTP status 503");
        a.error = Some("timed out".into());
        assert_eq!(a.failure_text(), "timed out");
        a.status = None;
        a.error = None;
        assert_eq!(a.failure_text(), "the attempt failed");
    }
}
