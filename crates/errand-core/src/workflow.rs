//! Workflows: steps that form a directed acyclic graph, each a job that becomes ready when
//! its parents have succeeded, with compensation of completed steps (in reverse order of
//! completion) when a step dies, a supervisor for steps past their deadline, and retry from
//! the failed steps.
//!
//! The rules live here once. A store loads a workflow's [`WorkflowFacts`] in the
//! transaction that ends one of its jobs, asks [`advance`] what follows, and applies the
//! [`Advance`] in that same transaction, so every node reaches the same decision once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flow::DeadlinePolicy;
use crate::ids::WorkflowId;
use crate::schedule_spec::JobTemplate;
use crate::{JobId, JobKind, JobState, NewJob, QueueName, ValidationError};

/// Most steps in one workflow.
pub const MAX_STEPS: usize = 10_000;
/// Longest step or workflow name.
pub const MAX_NAME_LEN: usize = 128;

/// Where a workflow is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Steps run as their parents succeed.
    Running,
    /// A step died (or the workflow was cancelled): steps not started were cancelled, and
    /// running steps are being let finish before compensation starts.
    Failing,
    /// Compensations of completed steps run, latest completed first, one at a time.
    Compensating,
    /// Every step succeeded.
    Succeeded,
    /// A step died and there was nothing to compensate.
    Failed,
    /// A step died and every completed step with a `compensate` job was undone.
    Compensated,
    /// A compensation died; the compensations after it did not run.
    CompensationFailed,
    /// Cancelled by a user with nothing to compensate.
    Cancelled,
}

impl WorkflowState {
    /// Every state, in life order.
    pub const ALL: [WorkflowState; 8] = [
        WorkflowState::Running,
        WorkflowState::Failing,
        WorkflowState::Compensating,
        WorkflowState::Succeeded,
        WorkflowState::Failed,
        WorkflowState::Compensated,
        WorkflowState::CompensationFailed,
        WorkflowState::Cancelled,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Running => "running",
            WorkflowState::Failing => "failing",
            WorkflowState::Compensating => "compensating",
            WorkflowState::Succeeded => "succeeded",
            WorkflowState::Failed => "failed",
            WorkflowState::Compensated => "compensated",
            WorkflowState::CompensationFailed => "compensation_failed",
            WorkflowState::Cancelled => "cancelled",
        }
    }

    /// Reads a stored or query name.
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ValidationError::new("state", format!("`{s}` is not a workflow state")))
    }

    /// Nothing more happens by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            WorkflowState::Succeeded
                | WorkflowState::Failed
                | WorkflowState::Compensated
                | WorkflowState::CompensationFailed
                | WorkflowState::Cancelled
        )
    }
}

/// What happens to steps still running when a step dies or the workflow is cancelled.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnStepFailure {
    /// They finish (and, if they succeed, are compensated with the others).
    #[default]
    Finish,
    /// They are cancelled (their workers' later settlements are refused).
    Cancel,
}

impl OnStepFailure {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnStepFailure::Finish => "finish",
            OnStepFailure::Cancel => "cancel",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// Anything but `finish` or `cancel`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "finish" => Ok(OnStepFailure::Finish),
            "cancel" => Ok(OnStepFailure::Cancel),
            other => Err(ValidationError::new(
                "on_failure",
                format!("`{other}` is not finish or cancel"),
            )),
        }
    }
}

/// One step as declared (a request, a template).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepSpec {
    /// Unique within the workflow.
    pub name: String,
    /// The job that runs the step.
    pub job: JobTemplate,
    /// Steps that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The job that undoes the step when the workflow fails after it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<JobTemplate>,
    /// How long after becoming ready the step must have finished, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// What the supervisor does then.
    #[serde(default)]
    pub on_deadline: DeadlinePolicy,
}

/// A workflow as declared, without its input: what a template stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowSpec {
    /// Shown in lists; not unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The steps, in any order.
    pub steps: Vec<StepSpec>,
    /// What happens to running steps when a step dies.
    #[serde(default)]
    pub on_failure: OnStepFailure,
}

impl WorkflowSpec {
    /// Checks the graph: 1 to [`MAX_STEPS`] steps, unique names, known dependencies, no step
    /// depending on itself or twice on one step, no cycle. The error names the culprit.
    ///
    /// # Errors
    /// The first problem found, with the step (or the cycle, as `a -> b -> a`) it is in.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(ValidationError::new(
                "steps",
                format!("a workflow has 1 to {MAX_STEPS} steps"),
            ));
        }
        if let Some(name) = &self.name {
            check_name("name", name)?;
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            check_name(&format!("steps[{i}].name"), &step.name)?;
            if index.insert(step.name.as_str(), i).is_some() {
                return Err(ValidationError::new(
                    format!("steps[{i}].name"),
                    format!("step `{}` is declared twice", step.name),
                ));
            }
            if step.deadline_ms == Some(0) {
                return Err(ValidationError::new(
                    format!("steps[{i}].deadline"),
                    "must be longer than zero",
                ));
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for dep in &step.depends_on {
                if !index.contains_key(dep.as_str()) {
                    return Err(ValidationError::new(
                        format!("steps[{i}].depends_on"),
                        format!(
                            "step `{}` depends on `{dep}`, which is not a step",
                            step.name
                        ),
                    ));
                }
                if *dep == step.name {
                    return Err(ValidationError::new(
                        format!("steps[{i}].depends_on"),
                        format!("step `{}` depends on itself", step.name),
                    ));
                }
                if !seen.insert(dep.as_str()) {
                    return Err(ValidationError::new(
                        format!("steps[{i}].depends_on"),
                        format!("step `{}` names `{dep}` twice", step.name),
                    ));
                }
            }
        }
        if let Some(cycle) = find_cycle(&self.steps, &index) {
            return Err(ValidationError::new(
                "steps",
                format!("the steps form a cycle: {}", cycle.join(" -> ")),
            ));
        }
        Ok(())
    }
}

fn check_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ValidationError::new(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// A cycle among the steps, as names from its first step back to it, if any. Iterative
/// depth-first search (a 10,000-step chain must not overflow the stack).
fn find_cycle(steps: &[StepSpec], index: &HashMap<&str, usize>) -> Option<Vec<String>> {
    // 0 = not visited, 1 = on the current path, 2 = done.
    let mut mark = vec![0u8; steps.len()];
    for start in 0..steps.len() {
        if mark[start] != 0 {
            continue;
        }
        // (step, next dependency to look at)
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(dep) = steps[node].depends_on.get(*next) {
                *next += 1;
                let Some(&d) = index.get(dep.as_str()) else {
                    continue;
                };
                match mark[d] {
                    0 => {
                        mark[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _)| *n == d).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..]
                            .iter()
                            .map(|(n, _)| steps[*n].name.clone())
                            .collect();
                        cycle.push(steps[d].name.clone());
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                mark[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

/// One step of a workflow to create: its job already built (id chosen, `flow.step` set,
/// `flow.after` empty: the store links parents by `depends_on`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    /// Unique within the workflow.
    pub name: String,
    /// The job that runs it.
    pub job: NewJob,
    /// Steps that must succeed first.
    pub depends_on: Vec<String>,
    /// The job template that undoes it.
    pub compensate: Option<JobTemplate>,
}

/// A workflow to create, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflow {
    /// Chosen by the caller.
    pub id: WorkflowId,
    /// Shown in lists.
    pub name: Option<String>,
    /// The template it was started from.
    pub template: Option<String>,
    /// Handed to every step.
    pub input: Value,
    /// A repeat within the idempotency window returns the first workflow.
    pub idempotency_key: Option<String>,
    /// What happens to running steps when a step dies.
    pub on_failure: OnStepFailure,
    /// The steps, in the order given.
    pub steps: Vec<NewStep>,
}

/// What the supervisor did to a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Supervision {
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `retried` or `failed`.
    pub action: DeadlinePolicy,
    /// The step's job state when its deadline was found passed.
    pub was: JobState,
}

/// A step's compensation as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompensationView {
    /// The compensation job.
    pub job_id: JobId,
    /// Its state.
    pub state: JobState,
    /// Its failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One step as shown: its job's state, attempts, timing and outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowStep {
    /// The step's name.
    pub name: String,
    /// Steps that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The job that runs it.
    pub job_id: JobId,
    /// The job's kind.
    pub kind: JobKind,
    /// The job's queue.
    #[schema(value_type = String)]
    pub queue: QueueName,
    /// The job's state (`blocked` while parents run).
    pub state: JobState,
    /// Attempts started.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When its current or last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// What it returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Its last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the supervisor acts if it has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deadline_at: Option<Timestamp>,
    /// What the supervisor did to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supervised: Vec<Supervision>,
    /// Its compensation, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<CompensationView>,
}

/// A workflow as shown by `GET /v1/workflows/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workflow {
    /// Its id.
    pub id: WorkflowId,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The template it was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Where it is.
    pub state: WorkflowState,
    /// Handed to every step.
    pub input: Value,
    /// What happens to running steps when a step dies.
    pub on_failure: OnStepFailure,
    /// The step whose death failed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// Why it failed (the step's error, "cancelled", or a compensation's error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times it was retried.
    pub retries: u32,
    /// Its idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// When it reached a final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    /// Every step, in declaration order.
    pub steps: Vec<WorkflowStep>,
}

/// A workflow as listed: no steps, their counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowSummary {
    /// Its id.
    pub id: WorkflowId,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The template it was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Where it is.
    pub state: WorkflowState,
    /// The step whose death failed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// Steps in all.
    pub steps: u32,
    /// Steps succeeded.
    pub steps_succeeded: u32,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it reached a final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
}

/// A step as [`advance`] sees it, read in the transaction of the change.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFact {
    /// The step's name.
    pub name: String,
    /// Its job.
    pub job_id: JobId,
    /// Its job's state now (after the change being applied).
    pub state: JobState,
    /// It has a `compensate` template.
    pub compensable: bool,
    /// Order of completion among the workflow's steps (set when it succeeded).
    pub completed_seq: Option<u64>,
    /// Its compensation job's state, once one was created.
    pub compensation: Option<JobState>,
}

/// A workflow as [`advance`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowFacts {
    /// Its state before the change.
    pub state: WorkflowState,
    /// What happens to running steps when a step dies.
    pub on_failure: OnStepFailure,
    /// A user cancelled it (so it ends `cancelled`, not `failed`, when nothing is undone).
    pub cancel_requested: bool,
    /// Every step.
    pub steps: Vec<StepFact>,
}

/// What happened to one of a workflow's jobs.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowEvent {
    /// A step's job reached a final state (`succeeded`, `dead`, `cancelled`); `error` is
    /// the job's error.
    StepEnded {
        /// The step.
        step: String,
        /// Its final state.
        state: JobState,
        /// Its error, if any.
        error: Option<String>,
    },
    /// A compensation job reached a final state.
    CompensationEnded {
        /// The step it undoes.
        step: String,
        /// Its final state.
        state: JobState,
        /// Its error, if any.
        error: Option<String>,
    },
    /// A user asked to cancel the workflow.
    CancelRequested,
}

/// What a store does after a workflow event, in the same transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advance {
    /// The workflow's new state, when it changes.
    pub state: Option<WorkflowState>,
    /// Set the failed step and error (first failure only).
    pub failure: Option<(Option<String>, String)>,
    /// Give the step that just succeeded this completion number.
    pub completed_seq: Option<u64>,
    /// Cancel these steps' jobs (not final; running ones only under
    /// [`OnStepFailure::Cancel`]). The store cancels them without calling [`advance`] again
    /// for each: this plan already counts them as ended.
    pub cancel: Vec<JobId>,
    /// Enqueue the compensation of this step (its `compensate` template, with
    /// [`crate::flow::compensation_context`]).
    pub compensate: Option<String>,
}

/// Decides what follows `event` in a workflow whose facts (read after the change) are
/// `facts`. Pure: the same facts give the same plan on every node.
///
/// The ended step's state in `facts` is taken from `event` (so a store that read the step
/// before writing its end gets the same plan), and an event with a state that is not final
/// changes nothing.
pub fn advance(facts: &WorkflowFacts, event: &WorkflowEvent) -> Advance {
    let mut plan = Advance::default();
    if facts.state.is_final() {
        return plan;
    }
    match event {
        WorkflowEvent::StepEnded { step, state, error } => {
            if !state.is_final() {
                return plan;
            }
            if *state == JobState::Succeeded {
                let seq = facts
                    .steps
                    .iter()
                    .filter(|s| s.name != *step)
                    .filter_map(|s| s.completed_seq)
                    .max()
                    .map_or(1, |m| m + 1);
                plan.completed_seq = Some(seq);
            }
            let after = facts_after(facts, &plan, step, *state);
            match facts.state {
                WorkflowState::Running if *state == JobState::Succeeded => {
                    plan.state = after
                        .iter()
                        .all(|s| s.state == JobState::Succeeded)
                        .then_some(WorkflowState::Succeeded);
                }
                WorkflowState::Running => {
                    let why = error
                        .clone()
                        .unwrap_or_else(|| format!("step {step} ended {}", state.as_str()));
                    plan.failure = Some((Some(step.clone()), why));
                    fail(facts, &mut plan, after, facts.cancel_requested);
                }
                // A step let finish may be between attempts (available or scheduled again
                // after a failed attempt): compensation waits for every step still alive,
                // not only those holding a lease right now.
                WorkflowState::Failing if after.iter().all(|s| s.state.is_final()) => {
                    begin_compensation(&after, &mut plan, facts.cancel_requested);
                }
                _ => {}
            }
        }
        WorkflowEvent::CompensationEnded { state, error, .. } => {
            if facts.state != WorkflowState::Compensating || !state.is_final() {
                return plan;
            }
            if *state == JobState::Succeeded {
                match next_compensation(&facts.steps) {
                    Some(next) => plan.compensate = Some(next),
                    None => plan.state = Some(WorkflowState::Compensated),
                }
            } else {
                plan.state = Some(WorkflowState::CompensationFailed);
                let why = error
                    .clone()
                    .unwrap_or_else(|| format!("a compensation ended {}", state.as_str()));
                plan.failure = Some((None, why));
            }
        }
        WorkflowEvent::CancelRequested => {
            if matches!(facts.state, WorkflowState::Running) {
                plan.failure = Some((None, "cancelled".into()));
                // The request itself says cancelled, whether or not the store set the flag
                // before reading the facts.
                fail(facts, &mut plan, facts.steps.clone(), true);
            }
        }
    }
    plan
}

/// What [`advance`] decides for a step that succeeded in a `running` workflow, from counts
/// alone: `succeeded` steps have succeeded (this one included) of `steps`. The step's
/// completion number is `succeeded`, and the workflow succeeds when every step has.
/// Stores use it so that a 10,000-step workflow does not load every step at each success
/// (its completion numbers run 1, 2, ... so the count is the next number); [`advance`]
/// stays the authority, and a test holds the two to the same answer.
pub fn advance_counted_success(succeeded: u64, steps: u64) -> Advance {
    Advance {
        completed_seq: Some(succeeded),
        state: (succeeded >= steps).then_some(WorkflowState::Succeeded),
        ..Advance::default()
    }
}

/// The steps with the ended one's state (and, on success, completion number) filled in.
fn facts_after(
    facts: &WorkflowFacts,
    plan: &Advance,
    step: &str,
    state: JobState,
) -> Vec<StepFact> {
    facts
        .steps
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s.name == step {
                s.state = state;
                if plan.completed_seq.is_some() {
                    s.completed_seq = plan.completed_seq;
                }
            }
            s
        })
        .collect()
}

/// A step died or a cancel came: cancel what has not started (and what runs, by policy),
/// then compensate now, or wait for running steps.
fn fail(facts: &WorkflowFacts, plan: &mut Advance, steps: Vec<StepFact>, cancelled: bool) {
    let mut after = Vec::with_capacity(steps.len());
    for mut s in steps {
        let cancel = !s.state.is_final()
            && (s.state != JobState::Running || facts.on_failure == OnStepFailure::Cancel);
        if cancel {
            plan.cancel.push(s.job_id);
            s.state = JobState::Cancelled;
        }
        after.push(s);
    }
    if after.iter().any(|s| !s.state.is_final()) {
        plan.state = Some(WorkflowState::Failing);
    } else {
        begin_compensation(&after, plan, cancelled);
    }
}

fn begin_compensation(steps: &[StepFact], plan: &mut Advance, cancelled: bool) {
    match next_compensation(steps) {
        Some(next) => {
            plan.state = Some(WorkflowState::Compensating);
            plan.compensate = Some(next);
        }
        None if cancelled => plan.state = Some(WorkflowState::Cancelled),
        None => plan.state = Some(WorkflowState::Failed),
    }
}

/// The succeeded, compensable step completed latest whose compensation has not started.
fn next_compensation(steps: &[StepFact]) -> Option<String> {
    steps
        .iter()
        .filter(|s| s.state == JobState::Succeeded && s.compensable && s.compensation.is_none())
        .max_by_key(|s| s.completed_seq.unwrap_or(0))
        .map(|s| s.name.clone())
}

/// What a retry does to each step: keep it, or run it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPlan {
    /// Steps kept as they are (succeeded and not undone).
    pub keep: Vec<String>,
    /// Steps run again, each with how many of its parents are run again too (0: ready now).
    pub rerun: BTreeMap<String, u32>,
}

/// Plans `POST /v1/workflows/{id}/retry`: a workflow that ended other than `succeeded`
/// resumes from its failed steps. Succeeded steps are kept unless their compensation
/// succeeded (their work was undone, so they run again); every other step runs again.
///
/// # Errors
/// The workflow has not ended, or it succeeded.
pub fn plan_retry(
    facts: &WorkflowFacts,
    parents: &HashMap<String, Vec<String>>,
) -> Result<RetryPlan, ValidationError> {
    if !facts.state.is_final() || facts.state == WorkflowState::Succeeded {
        return Err(ValidationError::new(
            "state",
            format!(
                "a workflow is retried once it has failed; this one is {}",
                facts.state.as_str()
            ),
        ));
    }
    let mut plan = RetryPlan::default();
    let rerun: BTreeSet<&str> = facts
        .steps
        .iter()
        .filter(|s| s.state != JobState::Succeeded || s.compensation == Some(JobState::Succeeded))
        .map(|s| s.name.as_str())
        .collect();
    for s in &facts.steps {
        if rerun.contains(s.name.as_str()) {
            let waiting = parents
                .get(&s.name)
                .map(|ps| ps.iter().filter(|p| rerun.contains(p.as_str())).count())
                .unwrap_or(0);
            plan.rerun
                .insert(s.name.clone(), u32::try_from(waiting).unwrap_or(u32::MAX));
        } else {
            plan.keep.push(s.name.clone());
        }
    }
    Ok(plan)
}

/// Each step's depth, for drawing a workflow in layers (`errand workflows show` and the
/// dashboard): 0 for steps without parents, else one more than its deepest parent.
/// Steps come in declaration order, any order of the graph; iterates until stable (at
/// most one pass per layer), so a long chain needs no recursion.
pub fn step_depths(steps: &[WorkflowStep]) -> Vec<usize> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut depth = vec![0usize; steps.len()];
    for _ in 0..steps.len() {
        let mut changed = false;
        for (i, s) in steps.iter().enumerate() {
            let d = s
                .depends_on
                .iter()
                .filter_map(|p| index.get(p.as_str()))
                .map(|&p| depth[p] + 1)
                .max()
                .unwrap_or(0);
            if d != depth[i] {
                depth[i] = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> JobTemplate {
        JobTemplate {
            kind: JobKind::parse("k").unwrap(),
            queue: QueueName::parse("q").unwrap(),
            payload: Value::Null,
            priority: 0,
            max_attempts: 1,
            timeout_ms: None,
            tags: vec![],
        }
    }

    fn step(name: &str, deps: &[&str]) -> StepSpec {
        StepSpec {
            name: name.into(),
            job: template(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            compensate: None,
            deadline_ms: None,
            on_deadline: DeadlinePolicy::Fail,
        }
    }

    fn spec(steps: Vec<StepSpec>) -> WorkflowSpec {
        WorkflowSpec {
            name: None,
            steps,
            on_failure: OnStepFailure::Finish,
        }
    }

    #[test]
    fn a_cycle_is_named() {
        let err = spec(vec![
            step("a", &["c"]),
            step("b", &["a"]),
            step("c", &["b"]),
        ])
        .validate()
        .unwrap_err();
        assert!(err.message.contains("a -> c -> b -> a"), "{}", err.message);
    }

    #[test]
    fn unknown_and_duplicate_steps_are_named() {
        let err = spec(vec![step("a", &["zz"])]).validate().unwrap_err();
        assert!(err.message.contains("`zz`"), "{}", err.message);
        let err = spec(vec![step("a", &[]), step("a", &[])])
            .validate()
            .unwrap_err();
        assert!(
            err.message.contains("`a` is declared twice"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_long_chain_is_no_cycle() {
        let steps: Vec<StepSpec> = (0..10_000)
            .map(|i| {
                let prev = format!("s{}", i.max(1) - 1);
                if i == 0 {
                    step("s0", &[])
                } else {
                    step(&format!("s{i}"), &[prev.as_str()])
                }
            })
            .collect();
        spec(steps).validate().unwrap();
    }

    #[test]
    fn a_self_dependency_is_named() {
        let err = spec(vec![step("a", &[]), step("b", &["b"])])
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "steps[1].depends_on");
        assert!(
            err.message.contains("`b` depends on itself"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_repeated_dependency_is_named() {
        let err = spec(vec![step("a", &[]), step("b", &["a", "a"])])
            .validate()
            .unwrap_err();
        assert!(err.message.contains("names `a` twice"), "{}", err.message);
    }

    #[test]
    fn a_two_step_cycle_is_named_and_a_diamond_is_not_one() {
        let err = spec(vec![step("a", &["b"]), step("b", &["a"])])
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "steps");
        assert!(err.message.contains("a -> b -> a"), "{}", err.message);
        spec(vec![
            step("d", &["b", "c"]),
            step("b", &["a"]),
            step("c", &["a"]),
            step("a", &[]),
        ])
        .validate()
        .unwrap();
    }

    #[test]
    fn step_counts_are_bounded() {
        let err = spec(vec![]).validate().unwrap_err();
        assert_eq!(err.field, "steps");
        let many: Vec<StepSpec> = (0..=MAX_STEPS)
            .map(|i| step(&format!("s{i}"), &[]))
            .collect();
        let err = spec(many).validate().unwrap_err();
        assert!(err.message.contains("1 to 10000"), "{}", err.message);
        let most: Vec<StepSpec> = (0..MAX_STEPS)
            .map(|i| step(&format!("s{i}"), &[]))
            .collect();
        spec(most).validate().unwrap();
    }

    #[test]
    fn names_and_deadlines_are_checked() {
        let err = spec(vec![step("", &[])]).validate().unwrap_err();
        assert_eq!(err.field, "steps[0].name");
        let err = spec(vec![step("a b", &[])]).validate().unwrap_err();
        assert_eq!(err.field, "steps[0].name");
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let err = spec(vec![step(&long, &[])]).validate().unwrap_err();
        assert_eq!(err.field, "steps[0].name");
        let mut zero = step("a", &[]);
        zero.deadline_ms = Some(0);
        let err = spec(vec![zero]).validate().unwrap_err();
        assert_eq!(err.field, "steps[0].deadline");
        let mut named = spec(vec![step("a", &[])]);
        named.name = Some("bad\nname".into());
        assert_eq!(named.validate().unwrap_err().field, "name");
    }

    // ---- advance ----

    use uuid::Uuid;

    fn job(i: usize) -> JobId {
        JobId(Uuid::from_u128(i as u128 + 1))
    }

    /// A step fact: `(name, state, compensable, completed_seq)`.
    fn f(i: usize, state: JobState, compensable: bool, seq: Option<u64>) -> StepFact {
        StepFact {
            name: format!("s{i}"),
            job_id: job(i),
            state,
            compensable,
            completed_seq: seq,
            compensation: None,
        }
    }

    fn facts(
        state: WorkflowState,
        on_failure: OnStepFailure,
        steps: Vec<StepFact>,
    ) -> WorkflowFacts {
        WorkflowFacts {
            state,
            on_failure,
            cancel_requested: false,
            steps,
        }
    }

    fn ended(i: usize, state: JobState) -> WorkflowEvent {
        WorkflowEvent::StepEnded {
            step: format!("s{i}"),
            state,
            error: (state != JobState::Succeeded).then(|| format!("boom {i}")),
        }
    }

    fn comp_ended(i: usize, state: JobState) -> WorkflowEvent {
        WorkflowEvent::CompensationEnded {
            step: format!("s{i}"),
            state,
            error: (state != JobState::Succeeded).then(|| format!("undo {i} failed")),
        }
    }

    use JobState::{Available, Blocked, Cancelled, Dead, Running, Scheduled, Succeeded};
    use WorkflowState as W;

    #[test]
    fn the_last_success_succeeds_the_workflow() {
        let fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![
                f(0, Succeeded, false, Some(1)),
                f(1, Succeeded, false, None),
            ],
        );
        let plan = advance(&fs, &ended(1, Succeeded));
        assert_eq!(plan.state, Some(W::Succeeded));
        assert_eq!(plan.completed_seq, Some(2));
        assert!(plan.cancel.is_empty() && plan.compensate.is_none() && plan.failure.is_none());
    }

    #[test]
    fn a_success_with_steps_left_only_numbers_it() {
        let fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![
                f(0, Succeeded, true, None),
                f(1, Blocked, false, None),
                f(2, Running, false, None),
            ],
        );
        let plan = advance(&fs, &ended(0, Succeeded));
        assert_eq!(
            plan,
            Advance {
                completed_seq: Some(1),
                ..Advance::default()
            }
        );
    }

    #[test]
    fn a_death_with_running_siblings_under_finish_waits_for_them() {
        let fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![
                f(0, Succeeded, true, Some(1)),
                f(1, Dead, false, None),
                f(2, Running, true, None),
                f(3, Blocked, false, None),
                f(4, Available, false, None),
                f(5, Scheduled, false, None),
            ],
        );
        let plan = advance(&fs, &ended(1, Dead));
        assert_eq!(plan.state, Some(W::Failing));
        assert_eq!(plan.failure, Some((Some("s1".into()), "boom 1".into())));
        assert_eq!(plan.cancel, vec![job(3), job(4), job(5)]);
        assert_eq!(plan.compensate, None);
        assert_eq!(plan.completed_seq, None);
    }

    #[test]
    fn a_death_with_running_siblings_under_cancel_cancels_them_and_compensates_now() {
        let fs = facts(
            W::Running,
            OnStepFailure::Cancel,
            vec![
                f(0, Succeeded, true, Some(1)),
                f(1, Dead, false, None),
                f(2, Running, true, None),
                f(3, Blocked, false, None),
            ],
        );
        let plan = advance(&fs, &ended(1, Dead));
        assert_eq!(plan.cancel, vec![job(2), job(3)]);
        assert_eq!(plan.state, Some(W::Compensating));
        assert_eq!(plan.compensate, Some("s0".into()));
    }

    #[test]
    fn a_death_with_nothing_to_undo_fails_the_workflow() {
        let fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![
                f(0, Succeeded, false, Some(1)),
                f(1, Dead, true, None),
                f(2, Blocked, true, None),
            ],
        );
        let plan = advance(
            &fs,
            &WorkflowEvent::StepEnded {
                step: "s1".into(),
                state: Dead,
                error: None,
            },
        );
        assert_eq!(plan.state, Some(W::Failed));
        assert_eq!(plan.cancel, vec![job(2)]);
        assert_eq!(
            plan.failure,
            Some((Some("s1".into()), "step s1 ended dead".into()))
        );
    }

    #[test]
    fn a_step_cancelled_by_a_user_fails_the_workflow() {
        let fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![f(0, Cancelled, false, None), f(1, Blocked, false, None)],
        );
        let plan = advance(&fs, &ended(0, Cancelled));
        assert_eq!(plan.state, Some(W::Failed));
        assert_eq!(plan.cancel, vec![job(1)]);
    }

    #[test]
    fn failing_compensates_when_the_last_running_step_ends() {
        // s1 died; s2 and s3 were let finish.
        let mut steps = vec![
            f(0, Succeeded, true, Some(1)),
            f(1, Dead, false, None),
            f(2, Succeeded, true, None),
            f(3, Running, true, None),
        ];
        let fs = facts(W::Failing, OnStepFailure::Finish, steps.clone());
        let plan = advance(&fs, &ended(2, Succeeded));
        assert_eq!(
            plan,
            Advance {
                completed_seq: Some(2),
                ..Advance::default()
            },
            "s3 still runs"
        );
        steps[2].completed_seq = Some(2);
        steps[3].state = Succeeded;
        let fs = facts(W::Failing, OnStepFailure::Finish, steps);
        let plan = advance(&fs, &ended(3, Succeeded));
        assert_eq!(plan.completed_seq, Some(3));
        assert_eq!(plan.state, Some(W::Compensating));
        assert_eq!(plan.compensate, Some("s3".into()), "latest completed first");
        assert!(plan.failure.is_none(), "the first failure stays");
    }

    #[test]
    fn failing_with_nothing_to_undo_ends_failed_when_the_last_running_step_dies() {
        let fs = facts(
            W::Failing,
            OnStepFailure::Finish,
            vec![f(0, Dead, false, None), f(1, Dead, true, None)],
        );
        let plan = advance(&fs, &ended(1, Dead));
        assert_eq!(plan.state, Some(W::Failed));
        assert!(plan.failure.is_none());
        assert!(plan.cancel.is_empty());
    }

    #[test]
    fn failing_waits_for_a_step_between_attempts() {
        // s2 was running when s0 died, then failed an attempt and waits for its retry: it
        // is still alive, so compensation must not start under it.
        for between in [Available, Scheduled] {
            let fs = facts(
                W::Failing,
                OnStepFailure::Finish,
                vec![
                    f(0, Dead, false, None),
                    f(1, Succeeded, true, Some(1)),
                    f(2, between, true, None),
                    f(3, Succeeded, true, None),
                ],
            );
            let plan = advance(&fs, &ended(3, Succeeded));
            assert_eq!(plan.state, None, "{between:?}");
            assert_eq!(plan.compensate, None, "{between:?}");
            assert_eq!(plan.completed_seq, Some(2));
        }
    }

    #[test]
    fn compensations_run_in_reverse_order_of_completion() {
        // Completion order s2, s0, s3, s1 (declaration order differs); s4 is not compensable.
        let mut steps = vec![
            f(0, Succeeded, true, Some(2)),
            f(1, Succeeded, true, Some(5)),
            f(2, Succeeded, true, Some(1)),
            f(3, Succeeded, true, Some(3)),
            f(4, Succeeded, false, Some(4)),
            f(5, Dead, true, None),
        ];
        let fs = facts(W::Running, OnStepFailure::Finish, steps.clone());
        let plan = advance(&fs, &ended(5, Dead));
        assert_eq!(plan.state, Some(W::Compensating));
        let mut order = vec![plan.compensate.clone().unwrap()];
        loop {
            let last = order.last().unwrap().clone();
            let i: usize = last[1..].parse().unwrap();
            steps[i].compensation = Some(Succeeded);
            let fs = facts(W::Compensating, OnStepFailure::Finish, steps.clone());
            let plan = advance(&fs, &comp_ended(i, Succeeded));
            assert!(plan.cancel.is_empty());
            match plan.compensate {
                Some(next) => {
                    assert_eq!(plan.state, None);
                    order.push(next);
                }
                None => {
                    assert_eq!(plan.state, Some(W::Compensated));
                    break;
                }
            }
        }
        assert_eq!(order, vec!["s1", "s3", "s0", "s2"]);
    }

    #[test]
    fn a_failed_compensation_stops_the_rest() {
        let mut steps = vec![
            f(0, Succeeded, true, Some(1)),
            f(1, Succeeded, true, Some(2)),
            f(2, Dead, false, None),
        ];
        steps[1].compensation = Some(Dead);
        let fs = facts(W::Compensating, OnStepFailure::Finish, steps);
        let plan = advance(&fs, &comp_ended(1, Dead));
        assert_eq!(plan.state, Some(W::CompensationFailed));
        assert_eq!(plan.compensate, None, "s0 is not undone");
        assert_eq!(plan.failure, Some((None, "undo 1 failed".into())));
        // A cancelled compensation counts as failed too.
        let plan = advance(
            &facts(
                W::Compensating,
                OnStepFailure::Finish,
                vec![f(0, Succeeded, true, Some(1))],
            ),
            &WorkflowEvent::CompensationEnded {
                step: "s0".into(),
                state: Cancelled,
                error: None,
            },
        );
        assert_eq!(plan.state, Some(W::CompensationFailed));
        assert_eq!(
            plan.failure,
            Some((None, "a compensation ended cancelled".into()))
        );
    }

    #[test]
    fn cancel_without_compensable_steps_is_cancelled() {
        let mut fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![
                f(0, Succeeded, false, Some(1)),
                f(1, Available, true, None),
                f(2, Blocked, true, None),
            ],
        );
        fs.cancel_requested = true;
        let plan = advance(&fs, &WorkflowEvent::CancelRequested);
        assert_eq!(plan.state, Some(W::Cancelled));
        assert_eq!(plan.cancel, vec![job(1), job(2)]);
        assert_eq!(plan.failure, Some((None, "cancelled".into())));
        // The same when the store read the facts before setting the flag.
        fs.cancel_requested = false;
        assert_eq!(
            advance(&fs, &WorkflowEvent::CancelRequested).state,
            Some(W::Cancelled)
        );
    }

    #[test]
    fn cancel_with_compensable_steps_compensates() {
        let mut fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![f(0, Succeeded, true, Some(1)), f(1, Blocked, true, None)],
        );
        fs.cancel_requested = true;
        let plan = advance(&fs, &WorkflowEvent::CancelRequested);
        assert_eq!(plan.state, Some(W::Compensating));
        assert_eq!(plan.compensate, Some("s0".into()));
        assert_eq!(plan.cancel, vec![job(1)]);
    }

    #[test]
    fn cancel_with_running_steps_waits_then_ends_cancelled() {
        let mut fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![f(0, Running, false, None), f(1, Blocked, false, None)],
        );
        fs.cancel_requested = true;
        let plan = advance(&fs, &WorkflowEvent::CancelRequested);
        assert_eq!(plan.state, Some(W::Failing));
        assert_eq!(plan.cancel, vec![job(1)]);
        let fs = WorkflowFacts {
            state: W::Failing,
            steps: vec![f(0, Succeeded, false, None), f(1, Cancelled, false, None)],
            ..fs
        };
        let plan = advance(&fs, &ended(0, Succeeded));
        assert_eq!(plan.state, Some(W::Cancelled));
        // Under `cancel`, the running step is cancelled at once.
        let mut fs = facts(
            W::Running,
            OnStepFailure::Cancel,
            vec![f(0, Running, false, None), f(1, Blocked, false, None)],
        );
        fs.cancel_requested = true;
        let plan = advance(&fs, &WorkflowEvent::CancelRequested);
        assert_eq!(plan.state, Some(W::Cancelled));
        assert_eq!(plan.cancel, vec![job(0), job(1)]);
    }

    #[test]
    fn cancel_is_only_for_running_workflows() {
        for state in [W::Failing, W::Compensating] {
            let fs = facts(
                state,
                OnStepFailure::Finish,
                vec![f(0, Running, true, None)],
            );
            assert_eq!(
                advance(&fs, &WorkflowEvent::CancelRequested),
                Advance::default()
            );
        }
    }

    #[test]
    fn final_workflows_ignore_events() {
        for state in WorkflowState::ALL.into_iter().filter(|s| s.is_final()) {
            let fs = facts(
                state,
                OnStepFailure::Cancel,
                vec![
                    f(0, Succeeded, true, Some(1)),
                    f(1, Dead, true, None),
                    f(2, Running, true, None),
                ],
            );
            for event in [
                ended(0, Succeeded),
                ended(1, Dead),
                comp_ended(0, Succeeded),
                comp_ended(0, Dead),
                WorkflowEvent::CancelRequested,
            ] {
                assert_eq!(
                    advance(&fs, &event),
                    Advance::default(),
                    "{state:?} {event:?}"
                );
            }
        }
    }

    #[test]
    fn a_compensation_end_outside_compensating_changes_nothing() {
        for state in [W::Running, W::Failing] {
            let fs = facts(
                state,
                OnStepFailure::Finish,
                vec![f(0, Succeeded, true, Some(1))],
            );
            assert_eq!(advance(&fs, &comp_ended(0, Succeeded)), Advance::default());
        }
    }

    #[test]
    fn a_non_final_state_is_no_end() {
        let fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![f(0, Available, false, None), f(1, Blocked, false, None)],
        );
        for state in [Available, Scheduled, Running, Blocked] {
            assert_eq!(advance(&fs, &ended(0, state)), Advance::default());
        }
    }

    #[test]
    fn the_event_state_wins_over_stale_facts() {
        // The store read s1 before writing its end.
        let fs = facts(
            W::Running,
            OnStepFailure::Finish,
            vec![f(0, Succeeded, false, Some(1)), f(1, Running, false, None)],
        );
        assert_eq!(advance(&fs, &ended(1, Succeeded)).state, Some(W::Succeeded));
    }

    // ---- plan_retry ----

    fn parents(pairs: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(c, ps)| (c.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    #[test]
    fn retry_keeps_succeeded_steps_and_counts_rerun_parents() {
        // s0 -> s1 -> s3, s0 -> s2 -> s3; s1 succeeded, s2 died, s3 was cancelled.
        let fs = facts(
            W::Failed,
            OnStepFailure::Finish,
            vec![
                f(0, Succeeded, false, Some(1)),
                f(1, Succeeded, false, Some(2)),
                f(2, Dead, false, None),
                f(3, Cancelled, false, None),
            ],
        );
        let ps = parents(&[("s1", &["s0"]), ("s2", &["s0"]), ("s3", &["s1", "s2"])]);
        let plan = plan_retry(&fs, &ps).unwrap();
        assert_eq!(plan.keep, vec!["s0", "s1"]);
        assert_eq!(
            plan.rerun,
            BTreeMap::from([("s2".to_string(), 0), ("s3".to_string(), 1)])
        );
    }

    #[test]
    fn retry_reruns_undone_steps() {
        let mut steps = vec![
            f(0, Succeeded, true, Some(1)),
            f(1, Succeeded, true, Some(2)),
            f(2, Dead, false, None),
        ];
        steps[0].compensation = Some(Succeeded);
        steps[1].compensation = Some(Succeeded);
        let fs = facts(W::Compensated, OnStepFailure::Finish, steps);
        let ps = parents(&[("s1", &["s0"]), ("s2", &["s1"])]);
        let plan = plan_retry(&fs, &ps).unwrap();
        assert!(plan.keep.is_empty());
        assert_eq!(
            plan.rerun,
            BTreeMap::from([
                ("s0".to_string(), 0),
                ("s1".to_string(), 1),
                ("s2".to_string(), 1)
            ])
        );
    }

    #[test]
    fn retry_needs_an_ended_unsuccessful_workflow() {
        for state in WorkflowState::ALL {
            let fs = facts(state, OnStepFailure::Finish, vec![f(0, Dead, false, None)]);
            let got = plan_retry(&fs, &HashMap::new());
            let ok = state.is_final() && state != W::Succeeded;
            assert_eq!(got.is_ok(), ok, "{state:?}");
            if let Err(e) = got {
                assert!(e.message.contains(state.as_str()), "{}", e.message);
            }
        }
    }

    /// The counted shortcut answers as `advance` for a success in a running workflow whose
    /// completed steps are numbered 1, 2, ... (as stores number them).
    #[test]
    fn the_counted_success_agrees_with_advance() {
        for steps in 1..6u64 {
            for done_before in 0..steps {
                let mut facts = WorkflowFacts {
                    state: WorkflowState::Running,
                    on_failure: OnStepFailure::Finish,
                    cancel_requested: false,
                    steps: Vec::new(),
                };
                for i in 0..steps {
                    let (state, seq) = if i < done_before {
                        (JobState::Succeeded, Some(i + 1))
                    } else if i == done_before {
                        // The step that just succeeded, as the store reads it after the end.
                        (JobState::Succeeded, None)
                    } else if i % 2 == 0 {
                        (JobState::Running, None)
                    } else {
                        (JobState::Blocked, None)
                    };
                    facts.steps.push(StepFact {
                        name: format!("s{i}"),
                        job_id: JobId::new(),
                        state,
                        compensable: i % 2 == 1,
                        completed_seq: seq,
                        compensation: None,
                    });
                }
                let event = WorkflowEvent::StepEnded {
                    step: format!("s{done_before}"),
                    state: JobState::Succeeded,
                    error: None,
                };
                assert_eq!(
                    advance(&facts, &event),
                    advance_counted_success(done_before + 1, steps),
                    "{done_before} of {steps} done before"
                );
            }
        }
    }
}
