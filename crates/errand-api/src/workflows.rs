//! Workflow bodies: starting one (inline steps or a template by name), templates, lists.

use errand_core::duration::FlexDuration;
use errand_core::flow::DeadlinePolicy;
use errand_core::job::Inherit;
use errand_core::schedule_spec::JobTemplate;
use errand_core::workflow::{
    OnStepFailure, StepSpec, WorkflowSpec, WorkflowState, WorkflowSummary, MAX_NAME_LEN, MAX_STEPS,
};
use errand_core::workflow_build::{WorkflowSource, WorkflowStart, START_KIND, START_QUEUE};
use errand_core::{JobKind, QueueName, ValidationError, WorkflowId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::{IdempotencyKey, PositiveDuration, StorableJson, WorkflowName};
use crate::{reject_nul, EnqueueLimits, JobTemplateRequest};

/// One step of `POST /v1/workflows` or a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// Unique within the workflow: 1 to 128 characters, no whitespace.
    #[schema(value_type = WorkflowName)]
    pub name: String,
    /// The job that runs the step (fields left out take the queue's defaults).
    pub job: JobTemplateRequest,
    /// Steps that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<WorkflowName>, max_items = 10000)]
    pub depends_on: Vec<String>,
    /// The job that undoes the step if the workflow fails after it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<JobTemplateRequest>,
    /// How long after becoming ready the step must have finished (`"10m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PositiveDuration>)]
    pub deadline: Option<FlexDuration>,
    /// What the supervisor does when the deadline passes: `fail` (default) or `retry` once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_deadline: Option<DeadlinePolicy>,
}

impl StepRequest {
    fn into_spec(self, limits: &EnqueueLimits) -> Result<(StepSpec, Inherit), ValidationError> {
        let (job, inherit) = self
            .job
            .into_template(limits)
            .map_err(|e| e.within("job"))?;
        let compensate = self
            .compensate
            .map(|c| c.into_template(limits).map(|(t, _)| t))
            .transpose()
            .map_err(|e| e.within("compensate"))?;
        let deadline_ms = match self.deadline {
            Some(d) if d.0.is_zero() => {
                return Err(ValidationError::new("deadline", "must be longer than zero"));
            }
            Some(d) => {
                errand_core::time::checked_after("deadline", errand_core::time::system_now(), d.0)?;
                Some(u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX))
            }
            None => None,
        };
        Ok((
            StepSpec {
                name: self.name,
                job,
                depends_on: self.depends_on,
                compensate,
                deadline_ms,
                on_deadline: self.on_deadline.unwrap_or_default(),
            },
            inherit,
        ))
    }
}

/// `POST /v1/workflows`: exactly one of `template` (a stored template's name) and `steps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    /// Shown in lists (with `template`, replaces the template's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WorkflowName>)]
    pub name: Option<String>,
    /// Start this stored template (`PUT /v1/workflow-templates/{name}`, errand.toml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WorkflowName>)]
    pub template: Option<String>,
    /// The steps, forming a directed acyclic graph by `depends_on` (1 to 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 10000)]
    pub steps: Option<Vec<StepRequest>>,
    /// Handed to every step in its context (`context.input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub input: Option<Value>,
    /// A repeat within the server's window returns the first workflow (200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<IdempotencyKey>)]
    pub idempotency_key: Option<String>,
    /// When a step dies, running steps `finish` (default) or are `cancel`led.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnStepFailure>,
}

/// Checks a workflow's input: storable JSON within the payload limit.
fn check_input(input: &Value, limits: &EnqueueLimits) -> Result<(), ValidationError> {
    reject_nul("input", input)?;
    let size = serde_json::to_vec(input)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limits.max_payload_bytes {
        return Err(ValidationError::new(
            "input",
            format!(
                "is {size} bytes; the limit is {} bytes",
                limits.max_payload_bytes
            ),
        ));
    }
    Ok(())
}

/// Checks a template's name: what a step name may be.
pub fn check_template_name(field: &str, name: &str) -> Result<(), ValidationError> {
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

/// Checks steps and builds the spec, with each step's inherited fields.
fn steps_into_spec(
    name: Option<String>,
    steps: Vec<StepRequest>,
    on_failure: Option<OnStepFailure>,
    limits: &EnqueueLimits,
) -> Result<(WorkflowSpec, Vec<Inherit>), ValidationError> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(ValidationError::new(
            "steps",
            format!("a workflow has 1 to {MAX_STEPS} steps"),
        ));
    }
    let mut specs = Vec::with_capacity(steps.len());
    let mut inherit = Vec::with_capacity(steps.len());
    for (i, s) in steps.into_iter().enumerate() {
        let (spec, inh) = s
            .into_spec(limits)
            .map_err(|e| e.within(&format!("steps[{i}]")))?;
        specs.push(spec);
        inherit.push(inh);
    }
    let spec = WorkflowSpec {
        name,
        steps: specs,
        on_failure: on_failure.unwrap_or_default(),
    };
    spec.validate()?;
    Ok((spec, inherit))
}

impl WorkflowRequest {
    /// Checks every field and the graph (a cycle, an unknown dependency, a duplicate name
    /// are named) and builds what the engine starts.
    ///
    /// # Errors
    /// The first problem found.
    pub fn into_start(self, limits: &EnqueueLimits) -> Result<WorkflowStart, ValidationError> {
        let input = self.input.unwrap_or(Value::Null);
        check_input(&input, limits)?;
        if let Some(k) = &self.idempotency_key {
            errand_core::names::check_label(
                "idempotency_key",
                k,
                errand_core::limits::MAX_LABEL_LEN,
            )?;
        }
        if let Some(n) = &self.name {
            check_template_name("name", n)?;
        }
        let source = match (self.template, self.steps) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "template",
                    "give template or steps, not both",
                ))
            }
            (None, None) => {
                return Err(ValidationError::new(
                    "steps",
                    "give steps or the name of a template",
                ))
            }
            (Some(name), None) => {
                check_template_name("template", &name)?;
                WorkflowSource::Template {
                    name,
                    name_override: self.name,
                    on_failure: self.on_failure,
                }
            }
            (None, Some(steps)) => {
                let (spec, inherit) = steps_into_spec(self.name, steps, self.on_failure, limits)?;
                WorkflowSource::Spec { spec, inherit }
            }
        };
        Ok(WorkflowStart {
            source,
            input,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// `PUT /v1/workflow-templates/{name}`: a workflow without its input, started by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTemplateRequest {
    /// The name its workflows show (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WorkflowName>)]
    pub name: Option<String>,
    /// The steps (1 to 10,000).
    #[schema(min_items = 1, max_items = 10000)]
    pub steps: Vec<StepRequest>,
    /// When a step dies, running steps `finish` (default) or are `cancel`led.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnStepFailure>,
}

impl WorkflowTemplateRequest {
    /// Checks every field and the graph and builds the spec to store. A template's job
    /// fields are fixed when stored (left-out ones take today's defaults, as a schedule's).
    ///
    /// # Errors
    /// The first problem found.
    pub fn into_spec(self, limits: &EnqueueLimits) -> Result<WorkflowSpec, ValidationError> {
        if let Some(n) = &self.name {
            check_template_name("name", n)?;
        }
        steps_into_spec(self.name, self.steps, self.on_failure, limits).map(|(s, _)| s)
    }
}

/// A stored template as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowTemplateView {
    /// The name it is started by.
    pub template: String,
    /// The workflow it starts (durations in milliseconds: `deadline_ms`, `timeout_ms`).
    pub spec: WorkflowSpec,
}

/// Every template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowTemplateList {
    /// By name.
    pub templates: Vec<WorkflowTemplateView>,
}

/// `GET /v1/workflows` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkflowListQuery {
    /// Only this state.
    #[param(value_type = Option<WorkflowState>)]
    pub state: Option<String>,
    /// Only workflows started from this template.
    #[param(value_type = Option<WorkflowName>)]
    pub template: Option<String>,
    /// `next` of the previous page.
    #[param(value_type = Option<WorkflowId>)]
    pub before: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A page of workflows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowList {
    /// Newest first.
    pub workflows: Vec<WorkflowSummary>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<WorkflowId>,
}

/// A schedule's alternative to `job`: the workflow template each slot starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledWorkflow {
    /// The template's name.
    #[schema(value_type = WorkflowName)]
    pub template: String,
    /// The input each started workflow gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = StorableJson)]
    pub input: Option<Value>,
}

impl ScheduledWorkflow {
    /// The job template a slot enqueues: kind `errand.start_workflow` in queue
    /// `errand.workflows`, payload `{"template", "input"}`.
    ///
    /// # Errors
    /// A bad template name or input.
    pub fn into_template(self, limits: &EnqueueLimits) -> Result<JobTemplate, ValidationError> {
        check_template_name("template", &self.template)?;
        let input = self.input.unwrap_or(Value::Null);
        check_input(&input, limits)?;
        let payload = serde_json::json!({"template": self.template, "input": input});
        Ok(JobTemplate {
            kind: JobKind::parse(START_KIND)?,
            queue: QueueName::parse(START_QUEUE)?,
            payload,
            priority: 0,
            max_attempts: errand_core::limits::DEFAULT_MAX_ATTEMPTS,
            timeout_ms: None,
            tags: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: EnqueueLimits = EnqueueLimits {
        max_payload_bytes: 4096,
    };

    fn step(name: &str, deps: &[&str]) -> StepRequest {
        StepRequest {
            name: name.into(),
            job: JobTemplateRequest {
                kind: "k".into(),
                ..Default::default()
            },
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            compensate: None,
            deadline: None,
            on_deadline: None,
        }
    }

    #[test]
    fn exactly_one_of_template_and_steps() {
        let both = WorkflowRequest {
            template: Some("t".into()),
            steps: Some(vec![step("a", &[])]),
            ..Default::default()
        };
        assert_eq!(
            both.into_start(&LIMITS).map_err(|e| e.field),
            Err("template".to_string())
        );
        let neither = WorkflowRequest::default();
        assert_eq!(
            neither.into_start(&LIMITS).map_err(|e| e.field),
            Err("steps".to_string())
        );
    }

    #[test]
    fn graph_problems_are_named() {
        let cycle = WorkflowRequest {
            steps: Some(vec![step("a", &["b"]), step("b", &["a"])]),
            ..Default::default()
        };
        let e = cycle.into_start(&LIMITS).expect_err("cycle");
        assert!(e.message.contains("a -> b -> a"), "{e}");
        let unknown = WorkflowRequest {
            steps: Some(vec![step("a", &["zzz"])]),
            ..Default::default()
        };
        let e = unknown.into_start(&LIMITS).expect_err("unknown");
        assert!(e.message.contains("zzz"), "{e}");
    }

    #[test]
    fn unset_job_fields_are_inherited_by_steps() {
        let ok = WorkflowRequest {
            steps: Some(vec![step("a", &[])]),
            ..Default::default()
        };
        match ok.into_start(&LIMITS).expect("valid").source {
            WorkflowSource::Spec { inherit, .. } => {
                assert!(inherit[0].priority && inherit[0].max_attempts && inherit[0].timeout)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_scheduled_workflow_is_a_start_job() {
        let t = ScheduledWorkflow {
            template: "etl".into(),
            input: Some(serde_json::json!({"day": 1})),
        }
        .into_template(&LIMITS)
        .expect("valid");
        assert_eq!(t.kind.as_str(), START_KIND);
        assert_eq!(t.queue.as_str(), START_QUEUE);
        assert_eq!(t.payload["template"], "etl");
    }
}
