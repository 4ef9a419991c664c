//! The built-in worker of queue `errand.workflows`: a job of kind `errand.start_workflow`
//! (what a schedule that starts a workflow enqueues, payload `{"template", "input"}`) starts
//! the named template with idempotency key `job:<job id>` (a retried or re-claimed job
//! starts it once) and completes with `{"workflow_id": ...}`; a missing or broken template
//! fails it for good with the reason.

use std::sync::Arc;
use std::time::Duration;

use errand_core::workflow_build::{WorkflowSource, WorkflowStart, START_KIND, START_QUEUE};
use errand_core::{JobKind, QueueName};
use errand_store::{ClaimedJob, Settlement, StoreError};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{ClaimRequest, Engine};

/// How long one claim waits for a job before asking again.
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// A start is one store transaction; a minute's lease is ample.
const LEASE: Duration = Duration::from_secs(60);
/// Jobs taken per claim.
const CLAIM_MAX: u32 = 16;
/// Pause after a failed claim (the store is away), so the loop does not spin.
const CLAIM_BACKOFF: Duration = Duration::from_secs(1);

/// Claims and runs start jobs until `token` fires.
pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let (Ok(queue), Ok(kind)) = (QueueName::parse(START_QUEUE), JobKind::parse(START_KIND)) else {
        tracing::error!("the workflow starter's queue or kind name is invalid");
        return;
    };
    let worker = format!("errand.workflow-starter.{}", engine.node_id());
    loop {
        let claim = engine.claim_unlisted(ClaimRequest {
            queue: queue.clone(),
            worker: worker.clone(),
            max: CLAIM_MAX,
            lease: LEASE,
            kinds: vec![kind.clone()],
            wait: CLAIM_WAIT,
        });
        let jobs = tokio::select! {
            _ = token.cancelled() => return,
            got = claim => got,
        };
        match jobs {
            Ok(jobs) => {
                for job in jobs {
                    start_one(&engine, job).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "workflow starter: claim failed");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(CLAIM_BACKOFF) => {}
                }
            }
        }
        // A shutting-down engine answers claims at once and empty: stop rather than spin.
        if token.is_cancelled() || engine.shutdown_token().is_cancelled() {
            return;
        }
    }
}

/// Starts the workflow one job names and settles the job.
async fn start_one(engine: &Engine, claimed: ClaimedJob) {
    let id = claimed.job.id;
    let settlement = match start_request(&claimed.job.payload, &id.to_string()) {
        Err(why) => fail(&claimed, why, true),
        Ok(start) => match engine.workflow_start(start).await {
            Ok((wf, _)) => Settlement::Complete {
                id,
                lease_token: claimed.lease_token,
                result: Some(json!({"workflow_id": wf.id})),
                report: None,
                session_state: None,
            },
            Err(e @ (StoreError::NotFound { .. } | StoreError::Invalid(_))) => {
                fail(&claimed, e.to_string(), true)
            }
            Err(e) => fail(&claimed, e.to_string(), false),
        },
    };
    if let Err(e) = engine.settle(settlement).await {
        tracing::warn!(job = %id, error = %e, "workflow starter: settling the start job failed");
    }
}

fn fail(claimed: &ClaimedJob, error: String, dead: bool) -> Settlement {
    Settlement::Fail {
        id: claimed.job.id,
        lease_token: claimed.lease_token,
        error,
        retry_in: None,
        dead,
        report: None,
    }
}

/// Reads a start job's payload.
fn start_request(payload: &Value, job_id: &str) -> Result<WorkflowStart, String> {
    let name = payload
        .get("template")
        .and_then(Value::as_str)
        .ok_or("the payload names no `template`")?
        .to_string();
    Ok(WorkflowStart {
        source: WorkflowSource::Template {
            name,
            name_override: None,
            on_failure: None,
        },
        input: payload.get("input").cloned().unwrap_or(Value::Null),
        idempotency_key: Some(format!("job:{job_id}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_its_template_and_input() {
        let s = start_request(&json!({"template": "etl", "input": {"d": 1}}), "j1").expect("ok");
        assert_eq!(s.idempotency_key.as_deref(), Some("job:j1"));
        assert_eq!(s.input, json!({"d": 1}));
        assert!(matches!(s.source, WorkflowSource::Template { ref name, .. } if name == "etl"));
        assert!(start_request(&json!({"input": 1}), "j1").is_err());
    }
}
