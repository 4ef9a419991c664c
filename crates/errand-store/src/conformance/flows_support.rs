//! Helpers the flow cases (continuations, workflows, batches) share.

use std::time::Duration;

use errand_core::flow::{DeadlinePolicy, StepRef, StepRole};
use errand_core::schedule_spec::JobTemplate;
use errand_core::workflow::{NewStep, NewWorkflow, OnStepFailure, Workflow};
use errand_core::{JobId, JobKind, JobState, NewJob, WorkflowId};
use serde_json::{json, Value};

use super::support::*;
use crate::{ClaimedJob, JobSettleManyParams, Settlement, SharedStore, WorkflowCreateParams};

/// A ready job of queue `q` that waits for `parents` (any end of theirs with `any_end`).
pub(super) fn after(q: &str, parents: &[JobId], any_end: bool) -> NewJob {
    let mut job = new_job(q, "k");
    job.flow.after = parents.to_vec();
    job.flow.after_any_end = any_end;
    job
}

/// A job template of queue `q`.
pub(super) fn template(q: &str) -> JobTemplate {
    JobTemplate {
        kind: JobKind::parse("k").expect("kind"),
        queue: queue(q),
        payload: json!({"t": q}),
        priority: 0,
        max_attempts: 1,
        timeout_ms: None,
        tags: vec![],
    }
}

/// One step as a case declares it.
#[derive(Clone)]
pub(super) struct Step {
    pub(super) name: String,
    pub(super) queue: String,
    pub(super) deps: Vec<String>,
    pub(super) compensate: Option<String>,
    pub(super) deadline_ms: Option<u64>,
    pub(super) on_deadline: DeadlinePolicy,
}

/// Step `name` in queue `q`, after `deps`.
pub(super) fn step(name: &str, q: &str, deps: &[&str]) -> Step {
    Step {
        name: name.into(),
        queue: q.into(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
        compensate: None,
        deadline_ms: None,
        on_deadline: DeadlinePolicy::Fail,
    }
}

impl Step {
    /// Undone by a job in queue `q`.
    pub(super) fn compensated_in(mut self, q: &str) -> Self {
        self.compensate = Some(q.into());
        self
    }

    /// With a deadline and its policy.
    pub(super) fn deadline(mut self, ms: u64, policy: DeadlinePolicy) -> Self {
        self.deadline_ms = Some(ms);
        self.on_deadline = policy;
        self
    }
}

/// A workflow of `steps` as the API builds it (step jobs with ids and `flow.step` set).
pub(super) fn workflow(steps: &[Step], on_failure: OnStepFailure) -> NewWorkflow {
    let id = WorkflowId::new();
    NewWorkflow {
        id,
        name: Some("wf".into()),
        template: None,
        input: json!({"order": 7}),
        idempotency_key: None,
        on_failure,
        steps: steps
            .iter()
            .map(|s| {
                let mut job = new_job(&s.queue, "k");
                job.max_attempts = 1;
                job.flow.step = Some(StepRef {
                    workflow: id,
                    step: s.name.clone(),
                    role: StepRole::Step,
                    deadline_ms: s.deadline_ms,
                    on_deadline: s.on_deadline,
                });
                NewStep {
                    name: s.name.clone(),
                    job,
                    depends_on: s.deps.clone(),
                    compensate: s.compensate.as_deref().map(template),
                }
            })
            .collect(),
    }
}

/// Creates `w`, which must be new.
pub(super) async fn create(store: &SharedStore, w: NewWorkflow) -> Workflow {
    let (wf, created) = store
        .workflow_create(WorkflowCreateParams {
            workflow: w,
            idempotency_window: WINDOW,
        })
        .await
        .expect("workflow create");
    assert!(created, "a new workflow is created");
    wf
}

/// The workflow now.
pub(super) async fn wf_get(store: &SharedStore, id: WorkflowId) -> Workflow {
    store.workflow_get(id).await.expect("workflow get")
}

/// The state of step `name`'s job.
pub(super) fn step_state(w: &Workflow, name: &str) -> JobState {
    w.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name}"))
        .state
}

/// Claims exactly one job of queue `q` (the only one ready there).
pub(super) async fn claim_only(store: &SharedStore, q: &str) -> ClaimedJob {
    let mut got = claim(store, q, 10).await;
    assert_eq!(
        got.len(),
        1,
        "exactly one job ready in {q}: {:?}",
        ids(&got)
    );
    got.remove(0)
}

/// Completes `c` with `result`.
pub(super) async fn complete_with(store: &SharedStore, c: &ClaimedJob, result: Value) {
    settled(
        store,
        Settlement::Complete {
            id: c.job.id,
            lease_token: c.lease_token,
            result: Some(result),
            report: None,
            session_state: None,
        },
    )
    .await;
}

/// Fails `c` for good (dead).
pub(super) async fn kill(store: &SharedStore, c: &ClaimedJob) {
    let j = settled(store, fail(c, None, true)).await;
    assert_eq!(j.state, JobState::Dead);
}

/// Completes every claimed job, `chunk` at a time, each with `{"i": <index>}`.
pub(super) async fn complete_all(store: &SharedStore, claimed: &[ClaimedJob], chunk: usize) {
    for part in claimed.chunks(chunk) {
        let out = store
            .job_settle_many(JobSettleManyParams {
                settlements: part
                    .iter()
                    .map(|c| Settlement::Complete {
                        id: c.job.id,
                        lease_token: c.lease_token,
                        result: Some(json!({"id": c.job.id})),
                        report: None,
                        session_state: None,
                    })
                    .collect(),
                retry_policy: no_jitter(),
            })
            .await
            .expect("settle many");
        for r in out {
            r.expect("each settles");
        }
    }
}

/// Claims everything ready in `q`.
pub(super) async fn claim_all(store: &SharedStore, q: &str) -> Vec<ClaimedJob> {
    let mut all = Vec::new();
    loop {
        let got = claim(store, q, 500).await;
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

/// How long a case waits for something that must come at once (a wake-up).
pub(super) const PROMPT: Duration = Duration::from_secs(10);
