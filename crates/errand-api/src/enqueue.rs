//! Enqueue requests and their validation into [`NewJob`].

use errand_core::duration::FlexDuration;
use errand_core::job::RunAt;
use errand_core::limits::{
    DEFAULT_MAX_ATTEMPTS, MAX_BATCH, MAX_LABEL_LEN, MAX_MAX_ATTEMPTS, MAX_TAGS, PRIORITY_RANGE,
};
use errand_core::names::check_label;
use errand_core::ordering::{JobOrdering, SessionOnDead};
use errand_core::{JobId, JobKind, JobState, NewJob, QueueName, ValidationError};
use std::collections::BTreeMap;

use errand_core::Secrets;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::{IdempotencyKey, PositiveDuration, StorableJson, Tag};

/// Limits the server applies to enqueued jobs.
#[derive(Debug, Clone, Copy)]
pub struct EnqueueLimits {
    /// Largest payload, as serialised JSON bytes.
    pub max_payload_bytes: usize,
}

/// One job to enqueue. Its `{:?}` shows the secrets' names only.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// Which handler runs it.
    #[schema(value_type = JobKind)]
    pub kind: String,
    /// Queue; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<QueueName>)]
    pub queue: Option<String>,
    /// The handler's input (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub payload: Option<Value>,
    /// -1000 to 1000, higher first; when absent the queue's default, else 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
    /// Run no earlier than this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<jiff::Timestamp>,
    /// Run no earlier than this long from now (`"30s"` or milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FlexDuration>,
    /// Attempts before the job is dead, 1 to 10000; when absent the queue's default, else 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_attempts: Option<u32>,
    /// Longest one attempt may run (`"5m"` or milliseconds); longer than zero; when absent
    /// the queue's default, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PositiveDuration>)]
    pub timeout: Option<FlexDuration>,
    /// Labels to search by, at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Tag>, max_items = 32)]
    pub tags: Vec<String>,
    /// Deduplicates enqueues within the server's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<IdempotencyKey>)]
    pub idempotency_key: Option<String>,
    /// A queue that gets one `errand.reply` message when the job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<QueueName>)]
    pub reply_to: Option<String>,
    /// Copied into the reply, the callback and every event of the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<IdempotencyKey>)]
    pub correlation_id: Option<String>,
    /// An `http` or `https` URL POSTed (signed) when the job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::webhook_url::WebhookUrl>)]
    pub callback_url: Option<String>,
    /// Jobs with the same lock key never run at the same time anywhere (1 to 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::OrderingKey>)]
    pub lock_key: Option<String>,
    /// At most `concurrency_limit` jobs with this key run at once (1 to 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::OrderingKey>)]
    pub concurrency_key: Option<String>,
    /// The limit of `concurrency_key`, 1 to 1000000 (default 1); the latest enqueue's
    /// limit is the key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub concurrency_limit: Option<u32>,
    /// Jobs with the same session key run one at a time in enqueue order and share the
    /// session's state (1 to 255 characters). At most one of lock, concurrency and session key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::OrderingKey>)]
    pub session_key: Option<String>,
    /// What the session does if this job dies: `block` (default) or `continue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_on_dead: Option<SessionOnDead>,
    /// The tenant: a queue's jobs are claimed round-robin across fairness keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::OrderingKey>)]
    pub fairness_key: Option<String>,
    /// Turns this key gets per turn of a weight-1 key, 1 to 1000 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub fairness_weight: Option<u32>,
    /// The rate limit (`PUT /v1/limits/key/{name}`) this job's start counts against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::OrderingKey>)]
    pub rate_key: Option<String>,
    /// Jobs that must succeed (or, with `after_any_end`, end at all) before this one is
    /// ready: it waits as `blocked` until then. At most 1000, each named once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = crate::schema::after_list)]
    pub after: Vec<JobId>,
    /// Any end of the `after` jobs releases it (dead, cancelled too), not only success.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_any_end: bool,
    /// Secret values by name (`[A-Za-z_][A-Za-z0-9_]*`, at most 64, each at most 8 KiB).
    /// Only the worker holding the job's lease sees the values, in its claim answer (a job
    /// definition's script gets each as an environment variable); job answers and
    /// listings show the names with `"***"`, events and pages leave them out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

/// Refuses NUL characters in a text a store keeps (a failure's error, a progress
/// message): PostgreSQL's `text` cannot hold them, so no store accepts them.
///
/// # Errors
/// A `ValidationError` naming `field`.
pub fn reject_nul_text(field: &str, text: &str) -> Result<(), ValidationError> {
    if text.contains('\0') {
        return Err(ValidationError::new(
            field,
            "must not contain NUL characters (\\u0000)",
        ));
    }
    Ok(())
}

/// Refuses NUL characters anywhere in a JSON value (payload, result, checkpoint): no store
/// can keep them in every place (PostgreSQL's `jsonb` refuses `\u0000`), so none accepts
/// them.
///
/// # Errors
/// A `ValidationError` naming `field`.
pub fn reject_nul(field: &str, v: &Value) -> Result<(), ValidationError> {
    let bad = match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => return items.iter().try_for_each(|i| reject_nul(field, i)),
        Value::Object(map) => {
            for (k, val) in map {
                if k.contains('\0') {
                    return Err(ValidationError::new(
                        field,
                        "must not contain NUL characters (\\u0000)",
                    ));
                }
                reject_nul(field, val)?;
            }
            false
        }
        _ => false,
    };
    if bad {
        return Err(ValidationError::new(
            field,
            "must not contain NUL characters (\\u0000)",
        ));
    }
    Ok(())
}

impl std::fmt::Debug for EnqueueRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_without_secrets(f, "EnqueueRequest", self, |r| &mut r.secrets)
    }
}

/// `{:?}` of a request or answer that carries secret values: its JSON with each value
/// shown as `***`, so a log line of it shows no secret.
pub(crate) fn debug_without_secrets<T: Serialize + Clone>(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    value: &T,
    secrets: fn(&mut T) -> &mut BTreeMap<String, String>,
) -> std::fmt::Result {
    let mut shown = value.clone();
    for v in secrets(&mut shown).values_mut() {
        *v = errand_core::secrets::REDACTED.to_owned();
    }
    match serde_json::to_string(&shown) {
        Ok(json) => write!(f, "{name} {json}"),
        Err(_) => write!(f, "{name} {{ .. }}"),
    }
}

impl EnqueueRequest {
    /// A request for `kind` with everything else defaulted.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            ..Self::default()
        }
    }

    /// Checks every field and builds the job to store.
    ///
    /// # Errors
    /// The first field that breaks a rule.
    pub fn into_new_job(self, limits: &EnqueueLimits) -> Result<NewJob, ValidationError> {
        let kind = JobKind::parse(&self.kind)?;
        let queue = match &self.queue {
            Some(q) => QueueName::parse(q)?,
            None => QueueName::default_queue(),
        };
        let payload = self
            .payload
            .unwrap_or_else(|| Value::Object(Default::default()));
        reject_nul("payload", &payload)?;
        let size = serde_json::to_vec(&payload)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > limits.max_payload_bytes {
            return Err(ValidationError::new(
                "payload",
                format!(
                    "is {size} bytes; the limit is {} bytes",
                    limits.max_payload_bytes
                ),
            ));
        }
        let inherit = errand_core::job::Inherit {
            priority: self.priority.is_none(),
            max_attempts: self.max_attempts.is_none(),
            timeout: self.timeout.is_none(),
        };
        let ordering = JobOrdering {
            lock_key: self.lock_key,
            concurrency_key: self.concurrency_key,
            concurrency_limit: self.concurrency_limit,
            session_key: self.session_key,
            session_on_dead: self.session_on_dead,
            fairness_key: self.fairness_key,
            fairness_weight: self.fairness_weight,
            rate_key: self.rate_key,
        };
        ordering.validate()?;
        let priority = self.priority.unwrap_or(0);
        if !PRIORITY_RANGE.contains(&priority) {
            return Err(ValidationError::new(
                "priority",
                format!(
                    "must be between {} and {}",
                    PRIORITY_RANGE.start(),
                    PRIORITY_RANGE.end()
                ),
            ));
        }
        let run_at = match (self.run_at, self.delay) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "delay",
                    "give run_at or delay, not both",
                ));
            }
            (Some(t), None) => RunAt::At(t.as_millisecond()),
            (None, Some(d)) => {
                errand_core::time::checked_after("delay", errand_core::time::system_now(), d.0)?;
                RunAt::After(d.0)
            }
            (None, None) => RunAt::Now,
        };
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(ValidationError::new(
                "max_attempts",
                format!("must be between 1 and {MAX_MAX_ATTEMPTS}"),
            ));
        }
        if let Some(t) = self.timeout {
            if t.0.is_zero() {
                return Err(ValidationError::new("timeout", "must be longer than zero"));
            }
            // An attempt's deadline is its start plus the timeout: past the year 9999 it
            // overflows the stores' arithmetic (PostgreSQL refuses the sum outright).
            errand_core::time::checked_after("timeout", errand_core::time::system_now(), t.0)?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(ValidationError::new(
                "tags",
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        for (i, t) in self.tags.iter().enumerate() {
            check_label(&format!("tags[{i}]"), t, MAX_LABEL_LEN)?;
        }
        if let Some(k) = &self.idempotency_key {
            check_label("idempotency_key", k, MAX_LABEL_LEN)?;
        }
        let reply_to = self
            .reply_to
            .as_deref()
            .map(|q| QueueName::parse(q).map_err(|e| ValidationError::new("reply_to", e.message)))
            .transpose()?;
        if let Some(c) = &self.correlation_id {
            check_label("correlation_id", c, MAX_LABEL_LEN)?;
        }
        if let Some(u) = &self.callback_url {
            crate::webhook_url::check("callback_url", u)?;
        }
        let secrets = Secrets::new("secrets", self.secrets)?;
        let id = JobId::new();
        let flow = errand_core::flow::NewJobFlow {
            after: self.after,
            after_any_end: self.after_any_end,
            ..Default::default()
        };
        flow.validate(id)?;
        Ok(NewJob {
            secrets,
            flow,
            id,
            kind,
            queue,
            payload,
            priority,
            run_at,
            max_attempts,
            timeout: self.timeout.map(|t| t.0),
            tags: self.tags,
            idempotency_key: self.idempotency_key,
            slot: None,
            notify: errand_core::EndNotice {
                reply_to,
                correlation_id: self.correlation_id,
                callback_url: self.callback_url,
            },
            ordering,
            inherit,
        })
    }
}

/// Many jobs, stored atomically.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchEnqueueRequest {
    /// 1 to 10,000 jobs.
    #[schema(min_items = 1, max_items = 10000)]
    pub jobs: Vec<EnqueueRequest>,
}

impl BatchEnqueueRequest {
    /// Validates every job; the first bad one names its index.
    ///
    /// # Errors
    /// The first job that breaks a rule, as `jobs[i].field`.
    pub fn into_new_jobs(self, limits: &EnqueueLimits) -> Result<Vec<NewJob>, ValidationError> {
        if self.jobs.is_empty() || self.jobs.len() > MAX_BATCH {
            return Err(ValidationError::new(
                "jobs",
                format!("a batch has 1 to {MAX_BATCH} jobs"),
            ));
        }
        self.jobs
            .into_iter()
            .enumerate()
            .map(|(i, j)| {
                j.into_new_job(limits)
                    .map_err(|e| e.within(&format!("jobs[{i}]")))
            })
            .collect()
    }
}

/// One job of a batch answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnqueuedJob {
    /// Its id.
    pub id: JobId,
    /// Its state.
    pub state: JobState,
    /// False when an idempotency key returned an earlier job.
    pub inserted: bool,
}

/// The answer to a batch enqueue, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchEnqueueResponse {
    /// One entry per requested job.
    pub jobs: Vec<EnqueuedJob>,
    /// How many were new.
    pub inserted: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: EnqueueLimits = EnqueueLimits {
        max_payload_bytes: 1024,
    };

    #[test]
    fn debug_shows_secret_names_not_values() {
        let mut r = EnqueueRequest::new("k");
        r.secrets.insert("API_KEY".into(), "hunter2".into());
        let shown = format!("{r:?}");
        assert!(
            shown.contains("API_KEY") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn unset_fields_are_left_for_the_queue_defaults_with_todays_values() {
        let job = EnqueueRequest::new("mail")
            .into_new_job(&LIMITS)
            .expect("valid");
        assert!(job.inherit.priority && job.inherit.max_attempts && job.inherit.timeout);
        assert_eq!(job.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(job.priority, 0);
        let job = EnqueueRequest {
            priority: Some(0),
            max_attempts: Some(3),
            ..EnqueueRequest::new("mail")
        }
        .into_new_job(&LIMITS)
        .expect("valid");
        assert!(!job.inherit.priority && !job.inherit.max_attempts && job.inherit.timeout);
    }

    #[test]
    fn ordering_fields_are_checked_and_carried() {
        let two_gates = EnqueueRequest {
            lock_key: Some("a".into()),
            session_key: Some("b".into()),
            ..EnqueueRequest::new("mail")
        };
        assert_eq!(
            two_gates.into_new_job(&LIMITS).map_err(|e| e.field),
            Err("lock_key".to_string())
        );
        let zero = EnqueueRequest {
            concurrency_key: Some("c".into()),
            concurrency_limit: Some(0),
            ..EnqueueRequest::new("mail")
        };
        assert!(zero.into_new_job(&LIMITS).is_err());
        let job = EnqueueRequest {
            session_key: Some("s".into()),
            session_on_dead: Some(SessionOnDead::Continue),
            fairness_key: Some("t".into()),
            fairness_weight: Some(2),
            rate_key: Some("partner".into()),
            ..EnqueueRequest::new("mail")
        }
        .into_new_job(&LIMITS)
        .expect("valid");
        assert_eq!(job.ordering.session_key.as_deref(), Some("s"));
        assert_eq!(job.ordering.fairness_weight, Some(2));
        assert_eq!(job.ordering.rate_key.as_deref(), Some("partner"));
    }
}
