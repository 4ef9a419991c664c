//! Typed jobs: a job kind as a Rust type whose value is the payload, enqueued with
//! `client.enqueue(SendEmail { .. })`, and waiting for a job's result as a Rust type.

use std::time::Duration;

use errand_api::EnqueueRequest;
use errand_core::{Job, JobId, JobState};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Client, ClientError};

/// A job kind as a Rust type: its value, serialised as JSON, is the job's payload.
///
/// Only [`KIND`](JobType::KIND) must be given; [`configure`](JobType::configure) sets
/// per-value enqueue options (queue, priority, idempotency key, ...):
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SendEmail { to: String }
///
/// impl errand_client::JobType for SendEmail {
///     const KIND: &'static str = "send_email";
/// }
/// ```
pub trait JobType: Serialize + DeserializeOwned + Send + 'static {
    /// The job kind (`kind` of `POST /v1/jobs`, what a worker claims by).
    const KIND: &'static str;

    /// Sets enqueue options for this value on a request that already carries the kind and
    /// the payload. Does nothing unless overridden.
    fn configure(&self, request: &mut EnqueueRequest) {
        let _ = request;
    }

    /// The request that enqueues this value: kind, payload, then [`configure`]'s options.
    /// Change any field of it (every option of `POST /v1/jobs` is one) before
    /// `client.enqueue(request)`.
    ///
    /// # Errors
    /// `Payload` when the value does not serialise to JSON.
    ///
    /// [`configure`]: JobType::configure
    fn to_request(&self) -> Result<EnqueueRequest, ClientError> {
        let payload = serde_json::to_value(self).map_err(|e| {
            ClientError::Payload(format!("a {} payload does not serialise: {e}", Self::KIND))
        })?;
        let mut request = EnqueueRequest::new(Self::KIND);
        request.payload = Some(payload);
        self.configure(&mut request);
        Ok(request)
    }
}

/// What [`Client::enqueue`] accepts: a request (owned or borrowed) or a typed job.
pub trait IntoEnqueueRequest {
    /// The request to send.
    ///
    /// # Errors
    /// `Payload` when a typed job does not serialise.
    fn into_enqueue_request(self) -> Result<EnqueueRequest, ClientError>;
}

impl IntoEnqueueRequest for EnqueueRequest {
    fn into_enqueue_request(self) -> Result<EnqueueRequest, ClientError> {
        Ok(self)
    }
}

impl IntoEnqueueRequest for &EnqueueRequest {
    fn into_enqueue_request(self) -> Result<EnqueueRequest, ClientError> {
        Ok(self.clone())
    }
}

impl<J: JobType> IntoEnqueueRequest for J {
    fn into_enqueue_request(self) -> Result<EnqueueRequest, ClientError> {
        self.to_request()
    }
}

/// Why waiting for a job's result gave none.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The job ended without a result: dead (its last error given) or cancelled.
    #[error("job {id} ended {state}{}", error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    Ended {
        /// The job.
        id: JobId,
        /// `dead` or `cancelled`.
        state: JobState,
        /// Its last error, if any.
        error: Option<String>,
    },
    /// The job had not ended when the wait was over.
    #[error("job {id} is still {state} after {waited:?}")]
    TimedOut {
        /// The job.
        id: JobId,
        /// Its state when the wait ended.
        state: JobState,
        /// How long was waited.
        waited: Duration,
    },
    /// The job succeeded, but its result is not the type asked for.
    #[error("job {id} succeeded, but its result does not read as the type asked for: {message}")]
    Result {
        /// The job.
        id: JobId,
        /// What did not match.
        message: String,
    },
    /// A call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The longest `?wait=` one call asks for (the server's own limit is 60 s).
const WAIT_STEP: Duration = Duration::from_secs(30);

impl Client {
    /// Waits up to `within` for job `id` to end (long polls of `GET /v1/jobs/{id}?wait=`,
    /// repeated until the deadline) and returns it in whatever state it is then.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn wait_job(&self, id: JobId, within: Duration) -> Result<Job, ClientError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let step = left.min(WAIT_STEP);
            let wait = (!step.is_zero()).then(|| format!("{}ms", step.as_millis().max(1)));
            let job = self.job(id, wait.as_deref()).await?;
            if job.state.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
        }
    }

    /// Waits up to `within` for job `id` to succeed and reads its result as `R` (a job
    /// without a result reads as JSON `null`).
    ///
    /// # Errors
    /// `Ended` when it went dead or was cancelled, `TimedOut` when it had not ended in
    /// time, `Result` when the result is not an `R`, `Client` when a call failed.
    pub async fn wait_result<R: DeserializeOwned>(
        &self,
        id: JobId,
        within: Duration,
    ) -> Result<R, WaitError> {
        let job = self.wait_job(id, within).await?;
        match job.state {
            JobState::Succeeded => {
                let value = job.result.unwrap_or(serde_json::Value::Null);
                serde_json::from_value(value).map_err(|e| WaitError::Result {
                    id,
                    message: e.to_string(),
                })
            }
            JobState::Dead | JobState::Cancelled => Err(WaitError::Ended {
                id,
                state: job.state,
                error: job.error,
            }),
            state => Err(WaitError::TimedOut {
                id,
                state,
                waited: within,
            }),
        }
    }
}

/// How long a `?wait=` value asks to wait (`"30s"`, `"1500ms"`, or bare milliseconds).
pub(crate) fn wait_duration(wait: &str) -> Option<Duration> {
    let wait = wait.trim();
    if let Ok(ms) = wait.parse::<u64>() {
        return Some(Duration::from_millis(ms));
    }
    let signed: jiff::SignedDuration = wait.parse().ok()?;
    Duration::try_from(signed).ok()
}

/// Every route the typed client and the worker library call, as `(METHOD, path)` in the
/// server's OpenAPI spelling: the contract test checks each against `/v1/openapi.json`.
pub const LIBRARY_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/jobs"),
    ("POST", "/v1/jobs/batch"),
    ("GET", "/v1/jobs/{id}"),
    ("POST", "/v1/jobs/{id}/cancel"),
    ("POST", "/v1/jobs/{id}/retry"),
    ("POST", "/v1/queues/{queue}/claim"),
    ("POST", "/v1/jobs/{id}/heartbeat"),
    ("POST", "/v1/jobs/{id}/release"),
    ("POST", "/v1/jobs/settle"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct SendEmail {
        to: String,
    }

    impl JobType for SendEmail {
        const KIND: &'static str = "send_email";
        fn configure(&self, request: &mut EnqueueRequest) {
            request.priority = Some(5);
        }
    }

    #[test]
    fn a_typed_job_is_its_kind_payload_and_options() {
        let req = SendEmail { to: "a@b".into() }
            .into_enqueue_request()
            .expect("request");
        assert_eq!(req.kind, "send_email");
        assert_eq!(req.payload, Some(serde_json::json!({"to": "a@b"})));
        assert_eq!(req.priority, Some(5));
    }

    #[test]
    fn waits_read_as_durations() {
        assert_eq!(wait_duration("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(wait_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(wait_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(wait_duration("soon"), None);
    }
}
