//! Request-reply: the message a job with `reply_to` leaves in that queue when it ends, as
//! Service Bus does with `ReplyTo` and `CorrelationId`. Callers claim replies with the
//! ordinary worker protocol.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{EndNotice, RunAt};
use crate::limits::DEFAULT_MAX_ATTEMPTS;
use crate::{Job, JobId, JobKind, JobState, NewJob, QueueName};

/// The kind of every reply message.
pub const REPLY_KIND: &str = "errand.reply";

/// What a reply message carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplyPayload {
    /// The job that ended.
    pub job_id: JobId,
    /// The correlation id it was enqueued with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Its queue.
    pub queue: QueueName,
    /// Its kind.
    pub kind: JobKind,
    /// How it ended: `succeeded`, `dead` or `cancelled`.
    pub state: JobState,
    /// Its result (succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Its last error (dead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The reply a job that just ended owes, when it has `reply_to`; `None` otherwise. Stores
/// insert it in the transaction that ends the job, so it is never lost nor doubled.
pub fn reply_for(job: &Job) -> Option<NewJob> {
    let queue = job.reply_to.clone()?;
    if !job.state.is_final() {
        return None;
    }
    let payload = ReplyPayload {
        job_id: job.id,
        correlation_id: job.correlation_id.clone(),
        queue: job.queue.clone(),
        kind: job.kind.clone(),
        state: job.state,
        result: job.result.clone(),
        error: (job.state != JobState::Succeeded)
            .then(|| job.error.clone())
            .flatten(),
    };
    let kind = JobKind::parse(REPLY_KIND).ok()?;
    Some(NewJob {
        secrets: Default::default(),
        flow: Default::default(),
        id: JobId::new(),
        kind,
        queue,
        payload: serde_json::to_value(payload).ok()?,
        priority: 0,
        run_at: RunAt::Now,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        timeout: None,
        tags: Vec::new(),
        idempotency_key: None,
        slot: None,
        notify: EndNotice {
            reply_to: None,
            correlation_id: job.correlation_id.clone(),
            callback_url: None,
        },
        ordering: Default::default(),
        inherit: Default::default(),
    })
}
