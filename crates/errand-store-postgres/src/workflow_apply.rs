//! Advancing a workflow in the transaction of one of its events: the workflow row is
//! locked (`FOR UPDATE`, so racing ends of two steps on two nodes decide one after the
//! other), its facts loaded, [`workflow::advance`] asked, and its [`Advance`] applied.
//! A step's success in a running workflow only counts (`steps_succeeded`), so a
//! 10,000-step workflow does not load every step at every end.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use errand_core::flow::{self, DeadlinePolicy, StepRef, StepRole, WorkflowRef};
use errand_core::schedule_spec::JobTemplate;
use errand_core::workflow::{
    self, Advance, OnStepFailure, StepFact, WorkflowEvent, WorkflowFacts, WorkflowState,
};
use errand_core::{EventType, Job, JobId, JobState, WorkflowId};
use serde_json::Value;

use crate::fault::{corrupt, QResult, RowExt};
use crate::flow_end::role_of;
use crate::job_row::{job_columns, jobs_from_rows, JOB_COLUMN_COUNT};
use crate::job_write;
use crate::transition::EventRows;
use crate::wake;

/// A workflow row, locked.
#[derive(Debug, Clone)]
pub(crate) struct Locked {
    pub(crate) id: WorkflowId,
    pub(crate) name: Option<String>,
    pub(crate) input: Value,
    pub(crate) state: WorkflowState,
    pub(crate) on_failure: OnStepFailure,
    pub(crate) cancel_requested: bool,
}

/// Locks a workflow's row until the transaction ends; `None` when it does not exist.
pub(crate) async fn lock(client: &impl GenericClient, id: WorkflowId) -> QResult<Option<Locked>> {
    let stmt = client
        .prepare_cached(
            "SELECT name, input, state, on_failure, cancel_requested FROM workflows \
             WHERE id = $1 FOR UPDATE",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&id.0]).await? else {
        return Ok(None);
    };
    Ok(Some(Locked {
        id,
        name: row.column(0)?,
        input: row.column(1)?,
        state: WorkflowState::parse(&row.column::<String>(2)?).map_err(corrupt)?,
        on_failure: OnStepFailure::parse(&row.column::<String>(3)?).map_err(corrupt)?,
        cancel_requested: row.column(4)?,
    }))
}

/// Every step of a locked workflow as [`workflow::advance`] sees it, in declaration order.
/// A step whose job was pruned has the state its row last recorded.
pub(crate) async fn facts(client: &impl GenericClient, wf: &Locked) -> QResult<WorkflowFacts> {
    let stmt = client
        .prepare_cached(
            "SELECT s.name, s.job_id, COALESCE(j.state, s.state), s.compensate IS NOT NULL, \
                 s.completed_seq, c.state \
             FROM workflow_steps s LEFT JOIN jobs j ON j.id = s.job_id \
             LEFT JOIN jobs c ON c.id = s.compensation_job_id \
             WHERE s.workflow_id = $1 ORDER BY s.position",
        )
        .await?;
    let mut steps = Vec::new();
    for row in client.query(&stmt, &[&wf.id.0]).await? {
        let state: String = row.column(2)?;
        let comp: Option<String> = row.column(5)?;
        steps.push(StepFact {
            name: row.column(0)?,
            job_id: JobId(row.column(1)?),
            state: state.parse().map_err(corrupt)?,
            compensable: row.column(3)?,
            completed_seq: row
                .column::<Option<i64>>(4)?
                .map(|s| u64::try_from(s).unwrap_or(0)),
            compensation: comp.map(|c| c.parse()).transpose().map_err(corrupt)?,
        });
    }
    Ok(WorkflowFacts {
        state: wf.state,
        on_failure: wf.on_failure,
        cancel_requested: wf.cancel_requested,
        steps,
    })
}

/// Records a step job's state on its step row (shown once the job is pruned).
pub(crate) async fn note_step_state(client: &impl GenericClient, job: &Job) -> QResult<()> {
    if role_of(job) != StepRole::Step {
        return Ok(());
    }
    let (Some(wf), Some(step)) = (job.flow.workflow_id, job.flow.step.as_deref()) else {
        return Ok(());
    };
    let stmt = client
        .prepare_cached(
            "UPDATE workflow_steps SET state = $3 WHERE workflow_id = $1 AND name = $2 AND job_id = $4",
        )
        .await?;
    client
        .execute(&stmt, &[&wf.0, &step, &job.state.as_str(), &job.id.0])
        .await?;
    Ok(())
}

/// The workflow hook of a job that ended. Returns the jobs the plan cancelled.
pub(crate) async fn on_job_end(
    client: &impl GenericClient,
    job: &Job,
    events: &mut EventRows,
) -> QResult<Vec<Job>> {
    let (Some(wf_id), Some(step)) = (job.flow.workflow_id, job.flow.step.clone()) else {
        return Ok(Vec::new());
    };
    let Some(wf) = lock(client, wf_id).await? else {
        return Ok(Vec::new());
    };
    let role = role_of(job);
    if role == StepRole::Step {
        // A revived step of another run of the step (its job was replaced) is not this step.
        let stmt = client
            .prepare_cached(
                "UPDATE workflow_steps SET state = $3 WHERE workflow_id = $1 AND name = $2 \
                 AND job_id = $4 RETURNING name",
            )
            .await?;
        let found = client
            .query_opt(&stmt, &[&wf.id.0, &step, &job.state.as_str(), &job.id.0])
            .await?;
        if found.is_none() {
            return Ok(Vec::new());
        }
    } else {
        let stmt = client
            .prepare_cached(
                "SELECT 1 FROM workflow_steps WHERE workflow_id = $1 AND name = $2 \
                 AND compensation_job_id = $3",
            )
            .await?;
        if client
            .query_opt(&stmt, &[&wf.id.0, &step, &job.id.0])
            .await?
            .is_none()
        {
            return Ok(Vec::new());
        }
    }
    if wf.state.is_final() {
        return Ok(Vec::new());
    }
    if role == StepRole::Step && job.state == JobState::Succeeded {
        let stmt = client
            .prepare_cached(
                "UPDATE workflows SET steps_succeeded = steps_succeeded + 1, updated_at = errand_now() \
                 WHERE id = $1 RETURNING steps_succeeded, steps",
            )
            .await?;
        let row = client.query_one(&stmt, &[&wf.id.0]).await?;
        let done: i32 = row.column(0)?;
        let steps: i32 = row.column(1)?;
        if wf.state == WorkflowState::Running {
            // The counted shortcut (core holds it to `advance`'s answer).
            let plan = workflow::advance_counted_success(
                u64::try_from(done).unwrap_or(0),
                u64::try_from(steps).unwrap_or(0),
            );
            return apply(client, &wf, Some(&step), plan, events).await;
        }
    }
    let facts = facts(client, &wf).await?;
    let event = match role {
        StepRole::Step => WorkflowEvent::StepEnded {
            step: step.clone(),
            state: job.state,
            error: job.error.clone(),
        },
        StepRole::Compensate => WorkflowEvent::CompensationEnded {
            step: step.clone(),
            state: job.state,
            error: job.error.clone(),
        },
    };
    let plan = workflow::advance(&facts, &event);
    apply(client, &wf, Some(&step), plan, events).await
}

/// Applies `plan` to a locked workflow; `step` is the step whose event it answers.
/// Returns the jobs it cancelled (their events are the caller's).
pub(crate) async fn apply(
    client: &impl GenericClient,
    wf: &Locked,
    step: Option<&str>,
    plan: Advance,
    events: &mut EventRows,
) -> QResult<Vec<Job>> {
    if let (Some(seq), Some(step)) = (plan.completed_seq, step) {
        let stmt = client
            .prepare_cached(
                "UPDATE workflow_steps SET completed_seq = $3 WHERE workflow_id = $1 AND name = $2",
            )
            .await?;
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        client.execute(&stmt, &[&wf.id.0, &step, &seq]).await?;
    }
    if let Some((failed_step, error)) = &plan.failure {
        let stmt = client
            .prepare_cached(
                "UPDATE workflows SET failed_step = $2, error = $3, updated_at = errand_now() \
                 WHERE id = $1 AND error IS NULL",
            )
            .await?;
        client
            .execute(&stmt, &[&wf.id.0, failed_step, error])
            .await?;
    }
    let mut cancelled = Vec::new();
    if !plan.cancel.is_empty() {
        let why = if wf.cancel_requested {
            "cancelled: the workflow was cancelled"
        } else {
            "cancelled: the workflow failed"
        };
        cancelled = cancel_jobs(client, wf.id, &plan.cancel, why).await?;
    }
    let mut plan = plan;
    if cancelled.len() < plan.cancel.len() {
        // A step another transaction holds was skipped, so it is still alive (being
        // claimed, most likely): the workflow waits for it as failing, and compensation
        // starts when it ends (`advance` waits for every step still alive).
        plan.compensate = None;
        if plan.state.is_some() {
            plan.state = Some(WorkflowState::Failing);
        }
    }
    if let Some(comp) = &plan.compensate {
        compensate(client, wf, comp, events).await?;
    }
    if let Some(state) = plan.state {
        let stmt = client
            .prepare_cached(
                "UPDATE workflows SET state = $2, updated_at = errand_now(), \
                     ended_at = CASE WHEN $3 THEN errand_now() ELSE NULL END WHERE id = $1",
            )
            .await?;
        client
            .execute(&stmt, &[&wf.id.0, &state.as_str(), &state.is_final()])
            .await?;
    }
    Ok(cancelled)
}

/// Cancels a workflow's jobs that have not ended (running ones lose their lease, so a
/// worker's later settle is refused) and records it on their step rows.
async fn cancel_jobs(
    client: &impl GenericClient,
    wf: WorkflowId,
    ids: &[JobId],
    why: &str,
) -> QResult<Vec<Job>> {
    let mut ids: Vec<uuid::Uuid> = ids.iter().map(|j| j.0).collect();
    ids.sort();
    // Rows another transaction holds are skipped, never waited for while the workflow row
    // is held: that transaction is ending the job, and its own end reaches this workflow
    // (after this one commits) as a step ended while failing. Waiting could deadlock with
    // it: it holds the job and waits for the workflow row.
    let sql = format!(
        "WITH l AS ( \
             SELECT id FROM jobs WHERE id = ANY($1) AND state NOT IN ('succeeded', 'dead', 'cancelled') \
             ORDER BY id FOR UPDATE SKIP LOCKED), \
         c AS ( \
             UPDATE jobs j SET state = 'cancelled', error = $2, finished_at = errand_now(), \
                 lease_token = NULL, lease_expires_at = NULL, updated_at = errand_now() \
             FROM l WHERE j.id = l.id \
             RETURNING {}), \
         a AS ( \
             UPDATE job_attempts t SET finished_at = errand_now(), outcome = 'cancelled', error = $2 \
             FROM c WHERE t.job_id = c.id AND t.attempt = c.attempt AND t.outcome = 'running'), \
         s AS ( \
             UPDATE workflow_steps s SET state = 'cancelled' FROM c \
             WHERE s.workflow_id = $3 AND s.job_id = c.id) \
         SELECT * FROM c",
        job_columns("j")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &[&ids, &why, &wf.0]).await?;
    let jobs = jobs_from_rows(&rows)?;
    // A blocked job never entered its gate: it gives no place back.
    let mut gated = Vec::new();
    for (job, row) in jobs.iter().zip(&rows) {
        if job.ordering.gate().is_some() && !row.column::<bool>(JOB_COLUMN_COUNT)? {
            gated.push(job);
        }
    }
    if !gated.is_empty() {
        crate::gate::release(client, &gated, &[]).await?;
    }
    Ok(jobs)
}

/// Enqueues the compensation of `step` with its result, and remembers it on the step row.
async fn compensate(
    client: &impl GenericClient,
    wf: &Locked,
    step: &str,
    events: &mut EventRows,
) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "SELECT s.compensate, j.result FROM workflow_steps s LEFT JOIN jobs j ON j.id = s.job_id \
             WHERE s.workflow_id = $1 AND s.name = $2",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&wf.id.0, &step]).await? else {
        return Ok(());
    };
    let Some(template) = row.column::<Option<Value>>(0)? else {
        return Ok(());
    };
    let template: JobTemplate = serde_json::from_value(template).map_err(corrupt)?;
    let result: Option<Value> = row.column(1)?;
    let job = template.new_job(Some(StepRef {
        workflow: wf.id,
        step: step.to_string(),
        role: StepRole::Compensate,
        deadline_ms: None,
        on_deadline: DeadlinePolicy::Fail,
    }));
    let context = flow::compensation_context(
        &WorkflowRef {
            id: wf.id,
            name: wf.name.as_deref(),
            input: &wf.input,
        },
        step,
        result.as_ref(),
    );
    let id = job.id;
    let inserted = job_write::insert_jobs_with(
        client,
        vec![job],
        std::time::Duration::ZERO,
        HashMap::from([(id.0, context)]),
    )
    .await?;
    for r in &inserted {
        events.push_job(&r.job, EventType::JobEnqueued)?;
        wake::note(r.job.queue.as_str());
    }
    let stmt = client
        .prepare_cached(
            "UPDATE workflow_steps SET compensation_job_id = $3 WHERE workflow_id = $1 AND name = $2",
        )
        .await?;
    client.execute(&stmt, &[&wf.id.0, &step, &id.0]).await?;
    Ok(())
}
