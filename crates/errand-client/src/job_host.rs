//! [`HttpJobHost`]: the script host's [`JobHost`] over the HTTP worker protocol, so that
//! `errand worker` on another machine runs job definitions with the same runtime as
//! `errand serve`: claims long-poll, heartbeats keep the lease and carry progress and
//! checkpoints, settlements carry the run's report, and log lines are shipped to the
//! server.

use std::time::Duration;

use errand_api::{
    ClaimRequest, ClaimedJobView, ErrorDetail, HeartbeatRequest, LogAppendRequest, LogLineInput,
    SettleCompletion, SettleFailure, SettleRequest, MAX_LOG_LINES_PER_CALL,
};
use errand_core::limits::{MAX_BATCH, MAX_CLAIM, MAX_LEASE_MS, MAX_WAIT_MS, MIN_LEASE_MS};
use errand_core::{Job, JobId, JobKind, JobState, LeaseToken, NewLogLine, Progress, QueueName};
use errand_runner::host::{
    HostError, HostedJob, JobHost, RunSettlement, RunVerdict, SettledAndClaimed,
};
use serde_json::Value;

use crate::{Client, ClientError};

/// A [`JobHost`] that holds its jobs on an errand server, reached over HTTP.
#[derive(Debug, Clone)]
pub struct HttpJobHost {
    client: Client,
    worker: String,
    lease_ms: u64,
}

impl HttpJobHost {
    /// A host that claims as `worker` (shown on jobs and attempts) with leases of `lease`
    /// (kept between 100 ms and 24 h), renewed by each heartbeat.
    pub fn new(client: Client, worker: impl Into<String>, lease: Duration) -> Self {
        let lease_ms = u64::try_from(lease.as_millis())
            .unwrap_or(MAX_LEASE_MS)
            .clamp(MIN_LEASE_MS, MAX_LEASE_MS);
        Self {
            client,
            worker: worker.into(),
            lease_ms,
        }
    }

    /// The client it talks through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A claimed job as the runner sees it. The claim's answer carries what a run needs;
    /// what it leaves out (priority, creation time) is filled with neutral values.
    fn hosted(&self, view: ClaimedJobView) -> HostedJob {
        let now = jiff::Timestamp::now();
        let lease_token = view.lease_token;
        HostedJob {
            job: Job {
                flow: errand_core::flow::JobFlow {
                    context: view.context.clone(),
                    workflow_id: view.workflow_id,
                    step: view.step.clone(),
                    batch_id: view.batch_id,
                    ..Default::default()
                },
                reply_to: None,
                correlation_id: None,
                callback_url: None,
                id: view.id,
                kind: view.kind,
                queue: view.queue,
                state: JobState::Running,
                payload: view.payload,
                priority: 0,
                run_at: now,
                attempt: view.attempt,
                max_attempts: view.max_attempts,
                timeout_ms: view.timeout_ms,
                tags: view.tags,
                idempotency_key: None,
                schedule: view.schedule,
                slot: view.slot,
                result: None,
                error: None,
                progress: None,
                checkpoint: view.checkpoint,
                worker: Some(self.worker.clone()),
                lease_expires_at: view.lease_expires_at,
                created_at: now,
                updated_at: now,
                started_at: Some(now),
                finished_at: None,
                ordering: Default::default(),
                parked: Default::default(),
                secrets: errand_core::Secrets::from_stored(view.secrets),
            },
            lease_token,
        }
    }
}

/// What a failed call means to the runner: a lost lease and a gone job are final for the
/// attempt; an unreachable or overloaded server may be tried again; anything else is a
/// refusal a retry will not cure.
pub fn host_error(e: ClientError) -> HostError {
    match e {
        ClientError::Api {
            status,
            code,
            message,
        } => match (status, code.as_str()) {
            (_, "lease_lost") => HostError::LeaseLost,
            (404, "not_found") if !message.starts_with("no such endpoint") => HostError::NotFound,
            (429 | 502 | 503 | 504, _) | (409, "contended") => {
                HostError::Unavailable(format!("{status} {code}: {message}"))
            }
            _ => HostError::Refused(format!("{status} {code}: {message}")),
        },
        e @ (ClientError::Transport { .. } | ClientError::Unreadable(_)) => {
            HostError::Unavailable(e.to_string())
        }
        ClientError::BadUrl(message) | ClientError::Payload(message) => HostError::Refused(message),
        e @ ClientError::CaCert { .. } => HostError::Refused(e.to_string()),
    }
}

/// What a failed settle call means: as [`host_error`], except that any 5xx answer may be
/// sent again, since the server keeps nothing of a batch it answers 5xx (a 500 is a bug or
/// an unreadable record, which may pass); a 4xx refuses something in the batch.
fn settle_error(e: ClientError) -> HostError {
    match e {
        ClientError::Api {
            status,
            code,
            message,
        } if status >= 500 && code != "lease_lost" => {
            HostError::Unavailable(format!("{status} {code}: {message}"))
        }
        e => host_error(e),
    }
}

/// What one entry of a settle answer means (the codes of [`host_error`]).
fn entry_error(detail: ErrorDetail) -> HostError {
    match detail.code.as_str() {
        "lease_lost" => HostError::LeaseLost,
        "not_found" => HostError::NotFound,
        "unavailable" | "busy" | "contended" => {
            HostError::Unavailable(format!("{}: {}", detail.code, detail.message))
        }
        _ => HostError::Refused(format!("{}: {}", detail.code, detail.message)),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// No store keeps a NUL character in text; a run that prints one loses only that.
fn storable_line(line: &NewLogLine) -> LogLineInput {
    let mut input = LogLineInput::from(line);
    if input.line.contains('\0') {
        input.line = input.line.replace('\0', "\u{FFFD}");
    }
    input
}

#[async_trait::async_trait]
impl JobHost for HttpJobHost {
    async fn claim(
        &self,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<Vec<HostedJob>, HostError> {
        if max == 0 {
            return Ok(vec![]);
        }
        let req = self.claim_request(kinds, max, wait);
        let answer = self
            .client
            .claim(queue.as_str(), &req)
            .await
            .map_err(host_error)?;
        Ok(answer.jobs.into_iter().map(|v| self.hosted(v)).collect())
    }

    fn lease(&self) -> Option<Duration> {
        Some(Duration::from_millis(self.lease_ms))
    }

    async fn heartbeat(
        &self,
        id: JobId,
        lease_token: LeaseToken,
        progress: Option<Progress>,
        checkpoint: Option<Value>,
    ) -> Result<(), HostError> {
        let req = HeartbeatRequest {
            lease_token,
            lease_ms: Some(self.lease_ms),
            progress,
            checkpoint,
        };
        self.client
            .heartbeat(id, &req)
            .await
            .map(|_| ())
            .map_err(host_error)
    }

    async fn settle(
        &self,
        settlements: Vec<RunSettlement>,
    ) -> Result<Vec<Result<(), HostError>>, HostError> {
        let mut outcomes = Vec::with_capacity(settlements.len());
        let mut rest = settlements;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(MAX_BATCH));
            outcomes.extend(self.settle_batch(rest).await?);
            rest = tail;
        }
        Ok(outcomes)
    }

    /// One `POST /v1/queues/{queue}/claim` carrying the settlements: one round trip, one
    /// transaction on the server. More than the server takes in one call ([`MAX_BATCH`])
    /// are settled first by `settle` calls of their own.
    async fn settle_and_claim(
        &self,
        settlements: Vec<RunSettlement>,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<SettledAndClaimed, HostError> {
        let mut settlements = settlements;
        if max == 0 {
            let settled = self.settle(settlements).await?;
            return Ok(SettledAndClaimed {
                settled,
                claimed: vec![],
            });
        }
        let carried = settlements.split_off(settlements.len().saturating_sub(MAX_BATCH));
        let mut settled = self.settle(settlements).await?;
        let wire = WireSettlements::from(carried);
        let mut req = self.claim_request(kinds, max, wait);
        req.completions = wire.completions;
        req.failures = wire.failures;
        // A claim that carries settlements fails as a settle call does (a 5xx kept none of
        // them: they may be sent again); one that carries none, as a claim.
        let answer =
            self.client
                .claim(queue.as_str(), &req)
                .await
                .map_err(if wire.places.is_empty() {
                    host_error
                } else {
                    settle_error
                })?;
        settled.extend(answers(&wire.places, answer.settled));
        let claimed = answer.jobs.into_iter().map(|v| self.hosted(v)).collect();
        Ok(SettledAndClaimed { settled, claimed })
    }

    async fn append_logs(
        &self,
        id: JobId,
        attempt: u32,
        lease_token: LeaseToken,
        lines: Vec<NewLogLine>,
    ) -> Result<(), HostError> {
        for chunk in lines.chunks(MAX_LOG_LINES_PER_CALL) {
            let req = LogAppendRequest {
                lease_token,
                attempt,
                lines: chunk.iter().map(storable_line).collect(),
            };
            self.client
                .append_logs(id, &req)
                .await
                .map_err(host_error)?;
        }
        Ok(())
    }

    /// `POST /v1/jobs/{id}/release`: uncounted, so a job given back on its last attempt
    /// stays `available` rather than dying of a worker's shutdown.
    async fn release(&self, id: JobId, lease_token: LeaseToken) -> Result<(), HostError> {
        self.client
            .release(id, &errand_api::ReleaseRequest { lease_token })
            .await
            .map(|_| ())
            .map_err(host_error)
    }

    /// Cluster leases live in the store; singleton definitions run on server nodes.
    async fn lease_acquire(
        &self,
        name: &str,
        _holder: &str,
        _ttl: Duration,
    ) -> Result<bool, HostError> {
        Err(HostError::Refused(format!(
            "`{name}` is a singleton: singleton definitions run on server nodes (errand serve --roles worker), not on errand worker"
        )))
    }

    async fn lease_release(&self, _name: &str, _holder: &str) -> Result<(), HostError> {
        Ok(())
    }
}

impl HttpJobHost {
    /// One `POST /v1/jobs/settle` of at most [`MAX_BATCH`] settlements, answered in the
    /// order they were given.
    async fn settle_batch(
        &self,
        settlements: Vec<RunSettlement>,
    ) -> Result<Vec<Result<(), HostError>>, HostError> {
        let wire = WireSettlements::from(settlements);
        if wire.places.is_empty() {
            return Ok(vec![]);
        }
        let req = SettleRequest {
            completions: wire.completions,
            failures: wire.failures,
        };
        let answer = self.client.settle(&req).await.map_err(settle_error)?;
        Ok(answers(&wire.places, answer.results))
    }

    /// The claim request this host sends (without settlements).
    fn claim_request(&self, kinds: &[JobKind], max: u32, wait: Duration) -> ClaimRequest {
        ClaimRequest {
            worker: Some(self.worker.clone()),
            max: Some(max.min(MAX_CLAIM)),
            wait_ms: Some(millis(wait).min(MAX_WAIT_MS)),
            lease_ms: Some(self.lease_ms),
            kinds: kinds.iter().map(|k| k.as_str().to_string()).collect(),
            ..Default::default()
        }
    }
}

/// Settlements as the wire carries them: completions and failures in two lists, and where
/// each settlement's answer is.
struct WireSettlements {
    completions: Vec<SettleCompletion>,
    failures: Vec<SettleFailure>,
    /// Per settlement given: whether it is a completion, and its index in its list.
    places: Vec<(bool, usize)>,
}

impl From<Vec<RunSettlement>> for WireSettlements {
    fn from(settlements: Vec<RunSettlement>) -> Self {
        let mut wire = WireSettlements {
            completions: Vec::new(),
            failures: Vec::new(),
            places: Vec::with_capacity(settlements.len()),
        };
        for s in settlements {
            match s.verdict {
                RunVerdict::Complete { result } => {
                    wire.places.push((true, wire.completions.len()));
                    wire.completions.push(SettleCompletion {
                        id: s.id,
                        lease_token: s.lease_token,
                        result,
                        report: s.report,
                        // Hosted scripts do not write session state; workers of the
                        // HTTP protocol send it with their completion.
                        session_state: None,
                    });
                }
                RunVerdict::Fail {
                    error,
                    retry_in,
                    dead,
                } => {
                    wire.places.push((false, wire.failures.len()));
                    wire.failures.push(SettleFailure {
                        id: s.id,
                        lease_token: s.lease_token,
                        error: Some(error),
                        retry_in_ms: retry_in.map(millis),
                        dead,
                        report: s.report,
                    });
                }
            }
        }
        wire
    }
}

/// The server's answers (completions first, then failures) in the order the settlements
/// were given.
///
/// A settlement the answer has no entry for (a server that answered fewer than were sent)
/// is `Unavailable`, to be sent again: settlements are idempotent for their token.
fn answers(
    places: &[(bool, usize)],
    results: Vec<errand_api::SettleResult>,
) -> Vec<Result<(), HostError>> {
    let sent = places.len();
    let answered = results.len();
    let completions = places.iter().filter(|(completed, _)| *completed).count();
    let mut results: Vec<Option<errand_api::SettleResult>> =
        results.into_iter().map(Some).collect();
    places
        .iter()
        .map(|&(completed, i)| {
            let at = if completed { i } else { completions + i };
            match results.get_mut(at).map(Option::take) {
                Some(Some(r)) => match r.error {
                    None => Ok(()),
                    Some(detail) => Err(entry_error(detail)),
                },
                _ => Err(HostError::Unavailable(format!(
                    "the server answered {answered} settlements of {sent}"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, message: &str) -> ClientError {
        ClientError::Api {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    #[test]
    fn http_errors_map_to_what_the_runner_does_next() {
        assert_eq!(
            host_error(api(409, "lease_lost", "x")),
            HostError::LeaseLost
        );
        assert_eq!(
            host_error(api(404, "not_found", "no job")),
            HostError::NotFound
        );
        for e in [
            api(503, "unavailable", "x"),
            api(503, "busy", "x"),
            api(429, "http", "x"),
            api(502, "http", "bad gateway"),
            api(409, "contended", "x"),
            ClientError::Transport {
                url: "http://127.0.0.1:1/v1/jobs/claim".into(),
                cause: "connection refused".into(),
            },
            ClientError::Unreadable("unreadable answer".into()),
        ] {
            assert!(
                matches!(host_error(e), HostError::Unavailable(_)),
                "retryable"
            );
        }
        for e in [
            api(400, "invalid_request", "x"),
            api(409, "conflict", "x"),
            api(413, "payload_too_large", "x"),
            api(404, "not_found", "no such endpoint: /v1/jobs/x/logs"),
            api(500, "internal", "x"),
            api(501, "not_implemented", "x"),
            ClientError::BadUrl("x".into()),
        ] {
            assert!(matches!(host_error(e), HostError::Refused(_)), "final");
        }
    }

    #[test]
    fn a_settle_answered_5xx_may_be_sent_again_and_a_4xx_is_refused() {
        for e in [
            api(500, "internal", "x"),
            api(501, "not_implemented", "x"),
            api(503, "unavailable", "x"),
        ] {
            assert!(matches!(settle_error(e), HostError::Unavailable(_)));
        }
        for e in [
            api(400, "invalid_request", "failures[0].error: NUL"),
            api(409, "constraint_violated", "x"),
            api(413, "payload_too_large", "x"),
        ] {
            assert!(matches!(settle_error(e), HostError::Refused(_)));
        }
    }

    #[test]
    fn answers_come_back_in_the_order_given_and_a_missing_one_is_sent_again() {
        let ok = || errand_api::SettleResult {
            id: JobId::new(),
            state: Some(JobState::Succeeded),
            error: None,
        };
        let refused = |code: &str| errand_api::SettleResult {
            id: JobId::new(),
            state: None,
            error: Some(ErrorDetail {
                code: code.into(),
                message: "x".into(),
            }),
        };
        // Given: failure, completion, completion, failure. The wire answers completions
        // first, then failures; the last failure's answer is missing.
        let places = [(false, 0), (true, 0), (true, 1), (false, 1)];
        let out = answers(
            &places,
            vec![ok(), refused("lease_lost"), refused("not_found")],
        );
        assert_eq!(out[0], Err(HostError::NotFound));
        assert_eq!(out[1], Ok(()));
        assert_eq!(out[2], Err(HostError::LeaseLost));
        assert!(
            matches!(out[3], Err(HostError::Unavailable(_))),
            "{:?}",
            out[3]
        );
    }

    #[test]
    fn nul_characters_never_reach_the_server() {
        let line = NewLogLine {
            at: 1_700_000_000_000,
            stream: errand_core::LogStream::Stderr,
            line: "a\0b".into(),
        };
        let input = storable_line(&line);
        assert_eq!(input.line, "a\u{FFFD}b");
        assert_eq!(input.at.as_millisecond(), 1_700_000_000_000);
        assert_eq!(input.stream, errand_core::LogStream::Stderr);
    }
}
