//! A job's place in a flow: the jobs it waits for (continuations and workflow steps), the
//! workflow step it is, the batch it belongs to, and what the flow hands it when it becomes
//! ready (its `context`: the workflow's input and its parents' results).
//!
//! Stores keep the edges and counters and apply these rules in the transaction that ends a
//! parent; the rules live here once.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{BatchId, WorkflowId};
use crate::{JobId, JobState, ValidationError};

/// Most jobs one job may wait for.
pub const MAX_AFTER: usize = 1000;

/// What a workflow job does: run a step, or undo one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepRole {
    /// Runs the step.
    Step,
    /// Undoes a completed step after the workflow failed.
    Compensate,
}

impl StepRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepRole::Step => "step",
            StepRole::Compensate => "compensate",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// Anything but `step` or `compensate`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "step" => Ok(StepRole::Step),
            "compensate" => Ok(StepRole::Compensate),
            other => Err(ValidationError::new(
                "step_role",
                format!("`{other}` is not step or compensate"),
            )),
        }
    }
}

/// What the supervisor does with a step whose deadline passed.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeadlinePolicy {
    /// The step is dead ("deadline passed"); the workflow fails.
    #[default]
    Fail,
    /// Once: the step starts over (a running attempt is failed and the job made available
    /// again with one more attempt) and gets its deadline again; the second time it fails.
    Retry,
}

impl DeadlinePolicy {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlinePolicy::Fail => "fail",
            DeadlinePolicy::Retry => "retry",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// Anything but `fail` or `retry`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "fail" => Ok(DeadlinePolicy::Fail),
            "retry" => Ok(DeadlinePolicy::Retry),
            other => Err(ValidationError::new(
                "on_deadline",
                format!("`{other}` is not fail or retry"),
            )),
        }
    }
}

/// The workflow step a new job is (set only by the store's workflow creation and
/// compensation, never by a producer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    /// Its workflow.
    pub workflow: WorkflowId,
    /// The step's name.
    pub step: String,
    /// Runs or undoes the step.
    pub role: StepRole,
    /// How long after becoming ready it must have finished.
    pub deadline_ms: Option<u64>,
    /// What happens then.
    pub on_deadline: DeadlinePolicy,
}

/// What a new job waits for and belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewJobFlow {
    /// Jobs that must succeed (or, with `after_any_end`, end at all) before it is ready:
    /// it waits as `blocked` until then.
    pub after: Vec<JobId>,
    /// Any end of a parent releases it, not only success.
    pub after_any_end: bool,
    /// The batch it counts in.
    pub batch: Option<BatchId>,
    /// The workflow step it is.
    pub step: Option<StepRef>,
}

impl NewJobFlow {
    /// Checks the parent list: at most [`MAX_AFTER`], no repeats, not itself.
    ///
    /// # Errors
    /// Too many parents, a repeated parent, or the job waiting for itself.
    pub fn validate(&self, own_id: JobId) -> Result<(), ValidationError> {
        if self.after.len() > MAX_AFTER {
            return Err(ValidationError::new(
                "after",
                format!("at most {MAX_AFTER} jobs"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for id in &self.after {
            if *id == own_id {
                return Err(ValidationError::new(
                    "after",
                    "a job cannot wait for itself",
                ));
            }
            if !seen.insert(*id) {
                return Err(ValidationError::new(
                    "after",
                    format!("{id} is named twice"),
                ));
            }
        }
        Ok(())
    }
}

/// A job's place in a flow as the store holds it and the API shows it (flattened into
/// [`crate::Job`]; every field is left out when unset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFlow {
    /// The workflow it is a step of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<WorkflowId>,
    /// The step's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Runs or undoes the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_role: Option<StepRole>,
    /// The batch it counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<BatchId>,
    /// The jobs it waits for (continuations; a step's parents are steps of its workflow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<JobId>,
    /// Any end of a parent releases it, not only success.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_any_end: bool,
    /// Parents that have not ended (as required) yet; it is `blocked` while above 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waiting_for: u32,
    /// What the flow hands the job when it becomes ready: see [`step_context`],
    /// [`compensation_context`] and [`continuation_context`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// When the supervisor acts if the step has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deadline_at: Option<Timestamp>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a parent's end does to a child that waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentEnd {
    /// One fewer parent to wait for.
    Satisfied,
    /// The child can never run: a continuation is cancelled (and so are its own
    /// continuations); a workflow step is left to the workflow's rules.
    Doomed,
    /// Not an end (the parent is not final).
    NotYet,
}

/// How a parent ending in `state` counts for a child waiting for it.
pub fn parent_end(state: JobState, after_any_end: bool) -> ParentEnd {
    match state {
        JobState::Succeeded => ParentEnd::Satisfied,
        s if s.is_final() && after_any_end => ParentEnd::Satisfied,
        s if s.is_final() => ParentEnd::Doomed,
        _ => ParentEnd::NotYet,
    }
}

/// The error a doomed continuation is cancelled with.
pub fn doomed_error(parent: JobId, state: JobState) -> String {
    format!(
        "cancelled: it waited for job {parent}, which ended {}",
        state.as_str()
    )
}

/// A workflow as a step's context names it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRef<'a> {
    /// Its id.
    pub id: WorkflowId,
    /// Its name, if it has one.
    pub name: Option<&'a str>,
    /// The input it was started with.
    pub input: &'a Value,
}

/// A step's context: `{"workflow": {"id", "name", "step"}, "input": <workflow input>,
/// "parents": {"<step>": <result or null>}}`.
pub fn step_context(
    workflow: &WorkflowRef<'_>,
    step: &str,
    parents: &[(String, Option<Value>)],
) -> Value {
    let mut by_name = Map::new();
    for (name, result) in parents {
        by_name.insert(name.clone(), result.clone().unwrap_or(Value::Null));
    }
    serde_json::json!({
        "workflow": workflow_json(workflow, step),
        "input": workflow.input,
        "parents": by_name,
    })
}

/// A compensation's context: `{"workflow": {...}, "input": <workflow input>, "compensates":
/// "<step>", "result": <the step's result or null>}`.
pub fn compensation_context(
    workflow: &WorkflowRef<'_>,
    step: &str,
    result: Option<&Value>,
) -> Value {
    serde_json::json!({
        "workflow": workflow_json(workflow, step),
        "input": workflow.input,
        "compensates": step,
        "result": result.cloned().unwrap_or(Value::Null),
    })
}

/// A continuation's context: `{"parents": {"<job id>": {"state": ..., "result": ...,
/// "error": ...}}}`.
pub fn continuation_context(parents: &[(JobId, JobState, Option<Value>, Option<String>)]) -> Value {
    let mut by_id = Map::new();
    for (id, state, result, error) in parents {
        let mut one = Map::new();
        one.insert("state".into(), Value::String(state.as_str().into()));
        if let Some(r) = result {
            one.insert("result".into(), r.clone());
        }
        if let Some(e) = error {
            one.insert("error".into(), Value::String(e.clone()));
        }
        by_id.insert(id.to_string(), Value::Object(one));
    }
    serde_json::json!({ "parents": by_id })
}

fn workflow_json(workflow: &WorkflowRef<'_>, step: &str) -> Value {
    serde_json::json!({
        "id": workflow.id,
        "name": workflow.name,
        "step": step,
    })
}

/// Why a stopped job may not be run again on its own (`POST /v1/jobs/{id}/retry`, dead
/// requeues), if it may not: a workflow job is run again with its workflow
/// (`POST /v1/workflows/{id}/retry`), which keeps the graph's rules; a continuation still
/// waiting for parents would run before them.
pub fn revive_refusal(flow: &JobFlow) -> Option<String> {
    if let (Some(_), Some(workflow)) = (flow.step_role, flow.workflow_id) {
        return Some(format!(
            "it is a step of workflow {workflow}: retry the workflow (POST /v1/workflows/{workflow}/retry, errand workflows retry)"
        ));
    }
    if flow.waiting_for > 0 {
        return Some(format!(
            "it still waits for {} job(s) it runs after",
            flow.waiting_for
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id(i: u128) -> JobId {
        JobId(Uuid::from_u128(i))
    }

    #[test]
    fn a_parent_end_counts_by_the_child_setting() {
        use JobState::*;
        for any_end in [false, true] {
            assert_eq!(parent_end(Succeeded, any_end), ParentEnd::Satisfied);
            for s in [Scheduled, Available, Running, Blocked] {
                assert_eq!(parent_end(s, any_end), ParentEnd::NotYet, "{s:?}");
            }
        }
        for s in [Dead, Cancelled] {
            assert_eq!(parent_end(s, false), ParentEnd::Doomed, "{s:?}");
            assert_eq!(parent_end(s, true), ParentEnd::Satisfied, "{s:?}");
        }
    }

    #[test]
    fn a_doomed_error_names_the_parent_and_its_end() {
        let msg = doomed_error(id(7), JobState::Dead);
        assert!(msg.starts_with("cancelled: "), "{msg}");
        assert!(
            msg.contains(&id(7).to_string()) && msg.ends_with("ended dead"),
            "{msg}"
        );
    }

    #[test]
    fn parents_are_bounded_unique_and_not_the_job() {
        let own = id(0);
        let ok = NewJobFlow {
            after: (1..=MAX_AFTER as u128).map(id).collect(),
            ..NewJobFlow::default()
        };
        ok.validate(own).unwrap();
        let mut too_many = ok.clone();
        too_many.after.push(id(MAX_AFTER as u128 + 1));
        assert_eq!(too_many.validate(own).unwrap_err().field, "after");
        let twice = NewJobFlow {
            after: vec![id(1), id(2), id(1)],
            ..NewJobFlow::default()
        };
        assert!(twice.validate(own).unwrap_err().message.contains("twice"));
        let itself = NewJobFlow {
            after: vec![id(1), own],
            ..NewJobFlow::default()
        };
        assert!(itself.validate(own).unwrap_err().message.contains("itself"));
    }

    #[test]
    fn contexts_carry_input_and_parents() {
        let input = serde_json::json!({"n": 1});
        let wf = WorkflowRef {
            id: WorkflowId(Uuid::from_u128(9)),
            name: Some("etl"),
            input: &input,
        };
        let ctx = step_context(
            &wf,
            "join",
            &[("a".into(), Some(serde_json::json!(1))), ("b".into(), None)],
        );
        assert_eq!(ctx["input"], input);
        assert_eq!(ctx["parents"], serde_json::json!({"a": 1, "b": null}));
        assert_eq!(ctx["workflow"]["step"], "join");
        assert_eq!(ctx["workflow"]["name"], "etl");
        let ctx = compensation_context(&wf, "a", Some(&serde_json::json!({"x": 2})));
        assert_eq!(ctx["compensates"], "a");
        assert_eq!(ctx["result"], serde_json::json!({"x": 2}));
        let ctx = continuation_context(&[
            (id(1), JobState::Succeeded, Some(serde_json::json!(3)), None),
            (id(2), JobState::Dead, None, Some("boom".into())),
        ]);
        assert_eq!(
            ctx["parents"][id(1).to_string()],
            serde_json::json!({"state": "succeeded", "result": 3})
        );
        assert_eq!(
            ctx["parents"][id(2).to_string()],
            serde_json::json!({"state": "dead", "error": "boom"})
        );
    }
}
