//! Turning a declared workflow ([`WorkflowSpec`]) and a start request into the
//! [`NewWorkflow`] a store creates: each step's job built from its template, with its
//! [`StepRef`]. The API (steps given inline) and the engine (a template named) both start
//! workflows through here, so a step job looks the same whichever way it was started.

use std::time::Duration;

use serde_json::Value;

use crate::flow::{NewJobFlow, StepRef, StepRole};
use crate::ids::WorkflowId;
use crate::job::{Inherit, RunAt};
use crate::schedule_spec::JobTemplate;
use crate::workflow::{NewStep, NewWorkflow, OnStepFailure, WorkflowSpec};
use crate::{JobId, NewJob, ValidationError};

/// The queue the built-in workflow starter claims from (schedules that start a workflow
/// enqueue their job here).
pub const START_QUEUE: &str = "errand.workflows";
/// The kind of the job that starts a workflow template: payload `{"template", "input"}`.
pub const START_KIND: &str = "errand.start_workflow";

/// Which workflow to start: declared inline, or a stored template by name.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowSource {
    /// Steps given with the request (already validated), with which fields of each step's
    /// job were left unset (so the queue's defaults apply).
    Spec {
        /// The workflow.
        spec: WorkflowSpec,
        /// One per step, in order.
        inherit: Vec<Inherit>,
    },
    /// A template stored under this name (`PUT /v1/workflow-templates/{name}`, errand.toml).
    Template {
        /// The template's name.
        name: String,
        /// Replaces the template's workflow name when given.
        name_override: Option<String>,
        /// Replaces the template's `on_failure` when given.
        on_failure: Option<OnStepFailure>,
    },
}

/// A request to start a workflow, checked but not yet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowStart {
    /// What to run.
    pub source: WorkflowSource,
    /// Handed to every step in its context.
    pub input: Value,
    /// A repeat within the idempotency window returns the first workflow.
    pub idempotency_key: Option<String>,
}

/// The job a template describes, with nothing inherited unless `inherit` says so (a
/// schedule's and a template's values are fixed when stored).
pub fn template_job(t: &JobTemplate, inherit: Inherit) -> NewJob {
    NewJob {
        secrets: Default::default(),
        id: JobId::new(),
        kind: t.kind.clone(),
        queue: t.queue.clone(),
        payload: t.payload.clone(),
        priority: t.priority,
        run_at: RunAt::Now,
        max_attempts: t.max_attempts,
        timeout: t.timeout_ms.map(Duration::from_millis),
        tags: t.tags.clone(),
        idempotency_key: None,
        slot: None,
        notify: Default::default(),
        ordering: Default::default(),
        inherit,
        flow: NewJobFlow::default(),
    }
}

/// Builds the workflow to create from a checked spec: validates the graph again (a stored
/// template may predate a rule), chooses the ids and sets each step job's [`StepRef`].
/// `inherit` has one entry per step (missing entries inherit nothing).
///
/// # Errors
/// What [`WorkflowSpec::validate`] refuses.
pub fn build(
    spec: WorkflowSpec,
    inherit: &[Inherit],
    template: Option<String>,
    input: Value,
    idempotency_key: Option<String>,
) -> Result<NewWorkflow, ValidationError> {
    spec.validate()?;
    let id = WorkflowId::new();
    let steps = spec
        .steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut job = template_job(&s.job, inherit.get(i).copied().unwrap_or_default());
            job.flow.step = Some(StepRef {
                workflow: id,
                step: s.name.clone(),
                role: StepRole::Step,
                deadline_ms: s.deadline_ms,
                on_deadline: s.on_deadline,
            });
            NewStep {
                name: s.name,
                job,
                depends_on: s.depends_on,
                compensate: s.compensate,
            }
        })
        .collect();
    Ok(NewWorkflow {
        id,
        name: spec.name,
        template,
        input,
        idempotency_key,
        on_failure: spec.on_failure,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::DeadlinePolicy;
    use crate::workflow::StepSpec;
    use crate::{JobKind, QueueName};

    fn step(name: &str, deps: &[&str]) -> StepSpec {
        StepSpec {
            name: name.into(),
            job: JobTemplate {
                kind: JobKind::parse("k").expect("kind"),
                queue: QueueName::default_queue(),
                payload: serde_json::json!({"n": name}),
                priority: 0,
                max_attempts: 3,
                timeout_ms: Some(1000),
                tags: vec![],
            },
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            compensate: None,
            deadline_ms: Some(5000),
            on_deadline: DeadlinePolicy::Retry,
        }
    }

    #[test]
    fn every_step_job_names_its_workflow_and_step() {
        let spec = WorkflowSpec {
            name: Some("w".into()),
            steps: vec![step("a", &[]), step("b", &["a"])],
            on_failure: OnStepFailure::Cancel,
        };
        let inherit = [Inherit {
            priority: true,
            ..Default::default()
        }];
        let wf = build(spec, &inherit, Some("t".into()), Value::Null, None).expect("valid");
        assert_eq!(wf.steps.len(), 2);
        assert!(wf.steps[0].job.inherit.priority);
        assert!(!wf.steps[1].job.inherit.priority);
        let r = wf.steps[1].job.flow.step.as_ref().expect("step ref");
        assert_eq!((r.workflow, r.step.as_str()), (wf.id, "b"));
        assert_eq!(r.deadline_ms, Some(5000));
        assert_eq!(r.on_deadline, DeadlinePolicy::Retry);
        assert!(wf.steps[1].job.flow.after.is_empty());
        assert_eq!(wf.steps[1].depends_on, vec!["a".to_string()]);
        assert_eq!(wf.on_failure, OnStepFailure::Cancel);
    }

    #[test]
    fn a_cycle_is_refused() {
        let spec = WorkflowSpec {
            name: None,
            steps: vec![step("a", &["b"]), step("b", &["a"])],
            on_failure: OnStepFailure::Finish,
        };
        let err = build(spec, &[], None, Value::Null, None).expect_err("cycle");
        assert!(err.message.contains("cycle"), "{err}");
    }
}
