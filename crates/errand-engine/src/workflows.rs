//! Workflows and their templates: start (inline or by template name), read, cancel, retry,
//! and the supervisor's pass; each announces the step jobs it changed, so waiting claims,
//! result waiters and event streams hear of them at once.

use errand_core::workflow::{Workflow, WorkflowSpec, WorkflowSummary};
use errand_core::workflow_build::{self, WorkflowSource, WorkflowStart};
use errand_core::{JobState, WorkflowId};
use errand_store::{StoreError, SupervisedStep, WorkflowCreateParams, WorkflowListParams};

use crate::Engine;

fn invalid(e: errand_core::ValidationError) -> StoreError {
    StoreError::Invalid(e.to_string())
}

impl Engine {
    /// Starts a workflow: its steps become jobs, those without parents ready at once. A
    /// template is resolved by name now; later changes to it do not touch this workflow.
    /// Answers the workflow and whether it is new (`false`: an idempotent repeat).
    ///
    /// # Errors
    /// `NotFound` for an unknown template or dependency, `Invalid` for a template that no
    /// longer validates, or the store's error.
    pub async fn workflow_start(
        &self,
        start: WorkflowStart,
    ) -> Result<(Workflow, bool), StoreError> {
        let workflow = match start.source {
            WorkflowSource::Spec { spec, inherit } => {
                workflow_build::build(spec, &inherit, None, start.input, start.idempotency_key)
                    .map_err(invalid)?
            }
            WorkflowSource::Template {
                name,
                name_override,
                on_failure,
            } => {
                let mut spec =
                    self.store()
                        .workflow_template_get(&name)
                        .await
                        .map_err(|e| match e {
                            StoreError::NotFound { .. } => StoreError::NotFound {
                                what: format!("workflow template {name}"),
                            },
                            other => other,
                        })?;
                if name_override.is_some() {
                    spec.name = name_override;
                }
                if let Some(f) = on_failure {
                    spec.on_failure = f;
                }
                workflow_build::build(spec, &[], Some(name), start.input, start.idempotency_key)
                    .map_err(|e| StoreError::Invalid(format!("the template: {e}")))?
            }
        };
        let (workflow, created) = self
            .metrics
            .timed(
                "workflow_create",
                self.store().workflow_create(WorkflowCreateParams {
                    workflow,
                    idempotency_window: self.config().idempotency_window,
                }),
            )
            .await?;
        if created {
            for step in &workflow.steps {
                self.metrics.enqueued(&step.queue, &step.kind);
            }
            self.publish_workflow(&workflow);
        }
        Ok((workflow, created))
    }

    /// One workflow with every step.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn workflow_get(&self, id: WorkflowId) -> Result<Workflow, StoreError> {
        self.store().workflow_get(id).await
    }

    /// A page of workflows, newest first.
    ///
    /// # Errors
    /// The store's error.
    pub async fn workflow_list(
        &self,
        params: WorkflowListParams,
    ) -> Result<Vec<WorkflowSummary>, StoreError> {
        self.store().workflow_list(params).await
    }

    /// Cancels a running workflow: steps not started are cancelled, running ones by its
    /// `on_failure`, then completed steps are compensated.
    ///
    /// # Errors
    /// `NotFound`, `WrongState` when it is not running, or the store's error.
    pub async fn workflow_cancel(&self, id: WorkflowId) -> Result<Workflow, StoreError> {
        let workflow = self.store().workflow_cancel(id).await?;
        self.publish_workflow(&workflow);
        Ok(workflow)
    }

    /// Resumes a workflow that ended other than `succeeded` from its failed steps.
    ///
    /// # Errors
    /// `NotFound`, `WrongState`, or the store's error.
    pub async fn workflow_retry(&self, id: WorkflowId) -> Result<Workflow, StoreError> {
        let workflow = self.store().workflow_retry(id).await?;
        self.publish_workflow(&workflow);
        Ok(workflow)
    }

    /// One supervisor pass: acts on up to `limit` steps whose deadline passed.
    ///
    /// # Errors
    /// The store's error.
    pub async fn workflow_supervise(&self, limit: u32) -> Result<Vec<SupervisedStep>, StoreError> {
        let done = self.store().workflow_supervise(limit).await?;
        for s in &done {
            tracing::info!(workflow = %s.workflow, step = %s.step, action = s.action.as_str(), "supervisor acted on a step past its deadline");
            self.publish(&s.job);
        }
        Ok(done)
    }

    /// Stores a workflow template (replacing one of the same name), after checking it.
    ///
    /// # Errors
    /// `Invalid` for a bad graph, or the store's error.
    pub async fn workflow_template_put(
        &self,
        name: &str,
        spec: WorkflowSpec,
    ) -> Result<(), StoreError> {
        spec.validate().map_err(invalid)?;
        self.store().workflow_template_put(name, spec).await
    }

    /// One workflow template.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn workflow_template_get(&self, name: &str) -> Result<WorkflowSpec, StoreError> {
        self.store().workflow_template_get(name).await
    }

    /// Every workflow template, by name.
    ///
    /// # Errors
    /// The store's error.
    pub async fn workflow_template_list(&self) -> Result<Vec<(String, WorkflowSpec)>, StoreError> {
        self.store().workflow_template_list().await
    }

    /// Deletes a workflow template; workflows started from it go on.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn workflow_template_delete(&self, name: &str) -> Result<(), StoreError> {
        self.store().workflow_template_delete(name).await
    }

    /// Announces every step job of `workflow` as it is now: ready ones wake their queues'
    /// claims, ended ones their waiters. (Jobs the store's flow rules made ready elsewhere,
    /// such as compensations, reach claims through the store's wake-ups.)
    fn publish_workflow(&self, workflow: &Workflow) {
        // Blocked steps changed nothing anyone waits on: a 10,000-step workflow announces
        // only its ready and ended steps.
        for step in &workflow.steps {
            if step.state == JobState::Available || step.state.is_final() {
                self.publish_state(step.job_id, &step.queue, step.state);
            }
            self.note_step(step.state, step.deadline_at);
            if let Some(c) = &step.compensation {
                if c.state.is_final() {
                    self.waiters.wake(c.job_id);
                }
            }
        }
        if workflow
            .steps
            .iter()
            .any(|s| s.state == JobState::Available)
        {
            self.feed.poke();
        }
    }
}
