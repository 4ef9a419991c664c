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
    /// The wait ran out while the server could not be reached (it was down, restarting or
    /// overloaded): the calls of the wait were tried again until then, and this is the
    /// last one's error.
    #[error("job {id}: timed out after {waited:?} without reaching the server{}; last error: {last_error}", last_state.map(|s| format!(" (last seen {s})")).unwrap_or_default())]
    Unreachable {
        /// The job.
        id: JobId,
        /// The state an earlier call of the wait saw, if one got through.
        last_state: Option<JobState>,
        /// How long was waited.
        waited: Duration,
        /// The last call's error (a transport error, or a 429/502/503/504 answer).
        last_error: ClientError,
    },
    /// A call failed for a reason that trying again would not cure.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The longest `?wait=` one call asks for (the server's own limit is 60 s).
const WAIT_STEP: Duration = Duration::from_secs(30);

/// The first pause after a wait's call found the server away: a server restarting is
/// back within a few hundred milliseconds, so the first tries come soon.
const WAIT_RETRY_FIRST: Duration = Duration::from_millis(50);

/// The longest pause between a wait's tries (each failure doubles the pause up to it): a
/// server back from a longer outage is seen within a second, and a waiter that is down for
/// minutes makes at most one call a second.
const WAIT_RETRY_MAX: Duration = Duration::from_secs(1);

/// How long after the wait's deadline the answer of its last long poll may still take to
/// arrive (the server answers at the deadline; this is the trip back). A call that has no
/// answer by then counts as a transport error: the wait ends near its deadline even when
/// the server accepts connections but does not answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

impl Client {
    /// Waits up to `within` for job `id` to end (long polls of `GET /v1/jobs/{id}?wait=`,
    /// repeated until the deadline) and returns it in whatever state it is then.
    ///
    /// The server being away (down, restarting, answering 429/502/503/504) does not end the
    /// wait: the call is tried again after a short pause (50 ms, doubling up to 1 s) until
    /// the deadline, so a wait rides out a server restart.
    ///
    /// # Errors
    /// `Unreachable` when the server could not be reached by the deadline (naming the last
    /// call's error); `Client` for an error trying again would not cure (`404` for a job
    /// that does not exist, `400`, ...).
    pub async fn wait_job(&self, id: JobId, within: Duration) -> Result<Job, WaitError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut pause = WAIT_RETRY_FIRST;
        let mut last_state = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let step = left.min(WAIT_STEP);
            let wait = (!step.is_zero()).then(|| format!("{}ms", step.as_millis().max(1)));
            let call = self.job(id, wait.as_deref());
            let answer = tokio::time::timeout_at(deadline + ANSWER_MARGIN, call)
                .await
                .unwrap_or_else(|_| {
                    Err(ClientError::Transport {
                        url: format!("{}/v1/jobs/{id}", self.base_url()),
                        cause: "no answer in time (timed out)".into(),
                    })
                });
            match answer {
                Ok(job) => {
                    if job.state.is_final() || tokio::time::Instant::now() >= deadline {
                        return Ok(job);
                    }
                    pause = WAIT_RETRY_FIRST;
                    last_state = Some(job.state);
                }
                Err(e) if e.is_transient() => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() {
                        return Err(WaitError::Unreachable {
                            id,
                            last_state,
                            waited: within,
                            last_error: e,
                        });
                    }
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(WAIT_RETRY_MAX);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits up to `within` for job `id` to succeed and reads its result as `R` (a job
    /// without a result reads as JSON `null`).
    ///
    /// Rides out the server being away as [`wait_job`](Self::wait_job) does.
    ///
    /// # Errors
    /// `Ended` when it went dead or was cancelled, `TimedOut` when it had not ended in
    /// time, `Unreachable` when the server could not be reached by then (naming the last
    /// call's error), `Result` when the result is not an `R`, `Client` when a call failed
    /// for a reason trying again would not cure.
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
