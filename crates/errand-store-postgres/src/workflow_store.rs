//! Workflow operations: create (steps as jobs linked by their dependencies), read, list,
//! cancel, retry, the deadline supervisor, and templates.

use std::collections::{BTreeMap, HashMap, VecDeque};

use deadpool_postgres::GenericClient;
use errand_core::flow::{DeadlinePolicy, StepRole, WorkflowRef};
use errand_core::time::to_timestamp;
use errand_core::workflow::{
    self, CompensationView, OnStepFailure, Supervision, Workflow, WorkflowEvent, WorkflowSpec,
    WorkflowState, WorkflowStep, WorkflowSummary,
};
use errand_core::{EventType, Job, JobId, JobKind, JobState, QueueName, WorkflowId};
use errand_store::{
    InsertedJob, StoreError, SupervisedStep, WorkflowCreateParams, WorkflowListParams,
};
use serde_json::Value;

use crate::fault::{corrupt, Fault, QResult, RowExt};
use crate::job_row::{job_from_row, millis, JOB_COLUMNS};
use crate::transition::{record_change, record_changes, record_plan_cancels, EventRows};
use crate::workflow_apply::{self, Locked};
use crate::{flow_end, job_write, wake};

fn not_found(id: WorkflowId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("workflow {id}"),
    })
}

fn wrong_state(msg: String) -> Fault {
    Fault::Store(StoreError::WrongState(msg))
}

/// The steps in an order where every step comes after the steps it depends on.
fn topological(steps: &[workflow::NewStep]) -> Vec<usize> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut waiting: Vec<usize> = steps.iter().map(|s| s.depends_on.len()).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for d in &s.depends_on {
            if let Some(&p) = index.get(d.as_str()) {
                children[p].push(i);
            } else {
                waiting[i] -= 1;
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &c in &children[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push_back(c);
            }
        }
    }
    order
}

/// Creates a workflow, or returns the one its idempotency key names (`false`).
pub(crate) async fn create(
    client: &impl GenericClient,
    params: WorkflowCreateParams,
) -> QResult<(Workflow, bool)> {
    let w = params.workflow;
    if let Some(key) = &w.idempotency_key {
        let stmt = client
            .prepare_cached(
                "UPDATE workflows SET idempotency_key = NULL, idempotency_expires_at = NULL \
                 WHERE idempotency_key = $1 AND idempotency_expires_at <= errand_now()",
            )
            .await?;
        client.execute(&stmt, &[key]).await?;
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO workflows (id, name, template, state, input, on_failure, idempotency_key, \
                 idempotency_expires_at, steps, created_at, updated_at) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6, \
                 CASE WHEN $6::text IS NULL THEN NULL ELSE errand_now() + $7 END, $8, errand_now(), errand_now()) \
             ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id",
        )
        .await?;
    let steps = i32::try_from(w.steps.len()).unwrap_or(i32::MAX);
    let made = client
        .query_opt(
            &stmt,
            &[
                &w.id.0,
                &w.name,
                &w.template,
                &w.input,
                &w.on_failure.as_str(),
                &w.idempotency_key,
                &millis(params.idempotency_window),
                &steps,
            ],
        )
        .await?;
    if made.is_none() {
        let stmt = client
            .prepare_cached("SELECT id FROM workflows WHERE idempotency_key = $1")
            .await?;
        let row = client.query_one(&stmt, &[&w.idempotency_key]).await?;
        return Ok((get(client, WorkflowId(row.column(0)?)).await?, false));
    }
    let ids: HashMap<&str, JobId> = w
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.job.id))
        .collect();
    let wref = WorkflowRef {
        id: w.id,
        name: w.name.as_deref(),
        input: &w.input,
    };
    let mut contexts = HashMap::new();
    let mut jobs = Vec::with_capacity(w.steps.len());
    for i in topological(&w.steps) {
        let s = &w.steps[i];
        let mut job = s.job.clone();
        job.flow.after = s
            .depends_on
            .iter()
            .filter_map(|d| ids.get(d.as_str()).copied())
            .collect();
        if let Some(step) = job.flow.step.as_mut() {
            step.workflow = w.id;
            step.step = s.name.clone();
            step.role = StepRole::Step;
        }
        if s.depends_on.is_empty() {
            contexts.insert(
                job.id.0,
                errand_core::flow::step_context(&wref, &s.name, &[]),
            );
        }
        jobs.push(job);
    }
    let inserted =
        job_write::insert_jobs_with(client, jobs, params.idempotency_window, contexts).await?;
    record_changes(
        client,
        inserted
            .iter()
            .filter(|r| r.inserted)
            .map(|r| (&r.job, EventType::JobEnqueued)),
    )
    .await?;
    insert_steps(client, &w, &inserted).await?;
    for r in inserted
        .iter()
        .filter(|r| r.job.state == JobState::Available)
    {
        wake::note(r.job.queue.as_str());
    }
    Ok((get(client, w.id).await?, true))
}

async fn insert_steps(
    client: &impl GenericClient,
    w: &workflow::NewWorkflow,
    inserted: &[InsertedJob],
) -> QResult<()> {
    let by_id: HashMap<uuid::Uuid, &Job> = inserted.iter().map(|r| (r.job.id.0, &r.job)).collect();
    let mut names = Vec::new();
    let mut positions = Vec::new();
    let mut job_ids = Vec::new();
    let mut kinds = Vec::new();
    let mut queues = Vec::new();
    let mut deps = Vec::new();
    let mut comps = Vec::new();
    let mut attempts = Vec::new();
    let mut deadlines = Vec::new();
    let mut on_deadline = Vec::new();
    let mut states = Vec::new();
    for (i, s) in w.steps.iter().enumerate() {
        let job = by_id.get(&s.job.id.0);
        names.push(s.name.clone());
        positions.push(i32::try_from(i).unwrap_or(i32::MAX));
        job_ids.push(s.job.id.0);
        kinds.push(s.job.kind.as_str().to_string());
        queues.push(s.job.queue.as_str().to_string());
        deps.push(Value::from(s.depends_on.clone()));
        comps.push(
            s.compensate
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?,
        );
        let max = job.map_or(s.job.max_attempts, |j| j.max_attempts);
        attempts.push(i32::try_from(max).unwrap_or(i32::MAX));
        let step = s.job.flow.step.as_ref();
        deadlines.push(
            step.and_then(|st| st.deadline_ms)
                .map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
        );
        on_deadline.push(step.map_or("fail", |st| st.on_deadline.as_str()));
        states.push(job.map_or("blocked", |j| j.state.as_str()));
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO workflow_steps (workflow_id, name, position, job_id, kind, queue, depends_on, \
                 compensate, max_attempts, deadline_ms, on_deadline, state) \
             SELECT $1, u.* FROM UNNEST($2::text[], $3::int[], $4::uuid[], $5::text[], $6::text[], \
                 $7::jsonb[], $8::jsonb[], $9::int[], $10::bigint[], $11::text[], $12::text[]) AS u",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &w.id.0,
                &names,
                &positions,
                &job_ids,
                &kinds,
                &queues,
                &deps,
                &comps,
                &attempts,
                &deadlines,
                &on_deadline,
                &states,
            ],
        )
        .await?;
    Ok(())
}

/// One workflow with every step in declaration order.
pub(crate) async fn get(client: &impl GenericClient, id: WorkflowId) -> QResult<Workflow> {
    let stmt = client
        .prepare_cached(
            "SELECT name, template, state, input, on_failure, failed_step, error, retries, \
                 idempotency_key, created_at, updated_at, ended_at FROM workflows WHERE id = $1",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&id.0])
        .await?
        .ok_or_else(|| not_found(id))?;
    let stmt = client
        .prepare_cached(
            "SELECT s.name, s.depends_on, s.job_id, s.kind, s.queue, COALESCE(j.state, s.state), \
                 COALESCE(j.attempt, 0), COALESCE(j.max_attempts, s.max_attempts), j.started_at, \
                 j.finished_at, j.result, j.error, j.deadline_at, s.supervised, s.compensation_job_id, \
                 c.state, c.error \
             FROM workflow_steps s LEFT JOIN jobs j ON j.id = s.job_id \
             LEFT JOIN jobs c ON c.id = s.compensation_job_id \
             WHERE s.workflow_id = $1 ORDER BY s.position",
        )
        .await?;
    let mut steps = Vec::new();
    for r in client.query(&stmt, &[&id.0]).await? {
        let kind: String = r.column(3)?;
        let queue: String = r.column(4)?;
        let state: String = r.column(5)?;
        let comp_id: Option<uuid::Uuid> = r.column(14)?;
        let comp_state: Option<String> = r.column(15)?;
        let compensation = match (comp_id, comp_state) {
            (Some(cid), Some(cs)) => Some(CompensationView {
                job_id: JobId(cid),
                state: cs.parse().map_err(corrupt)?,
                error: r.column(16)?,
            }),
            _ => None,
        };
        steps.push(WorkflowStep {
            name: r.column(0)?,
            depends_on: serde_json::from_value(r.column(1)?).map_err(corrupt)?,
            job_id: JobId(r.column(2)?),
            kind: JobKind::parse(&kind).map_err(corrupt)?,
            queue: QueueName::parse(&queue).map_err(corrupt)?,
            state: state.parse().map_err(corrupt)?,
            attempt: u32::try_from(r.column::<i32>(6)?).unwrap_or(0),
            max_attempts: u32::try_from(r.column::<i32>(7)?).unwrap_or(0),
            started_at: r.column::<Option<i64>>(8)?.map(to_timestamp),
            finished_at: r.column::<Option<i64>>(9)?.map(to_timestamp),
            result: r.column(10)?,
            error: r.column(11)?,
            deadline_at: r.column::<Option<i64>>(12)?.map(to_timestamp),
            supervised: serde_json::from_value(r.column(13)?).map_err(corrupt)?,
            compensation,
        });
    }
    Ok(Workflow {
        id,
        name: row.column(0)?,
        template: row.column(1)?,
        state: WorkflowState::parse(&row.column::<String>(2)?).map_err(corrupt)?,
        input: row.column(3)?,
        on_failure: OnStepFailure::parse(&row.column::<String>(4)?).map_err(corrupt)?,
        failed_step: row.column(5)?,
        error: row.column(6)?,
        retries: u32::try_from(row.column::<i32>(7)?).unwrap_or(0),
        idempotency_key: row.column(8)?,
        created_at: to_timestamp(row.column(9)?),
        updated_at: to_timestamp(row.column(10)?),
        ended_at: row.column::<Option<i64>>(11)?.map(to_timestamp),
        steps,
    })
}

/// A page of workflows, newest first.
pub(crate) async fn list(
    client: &impl GenericClient,
    p: &WorkflowListParams,
) -> QResult<Vec<WorkflowSummary>> {
    let stmt = client
        .prepare_cached(
            "SELECT id, name, template, state, failed_step, steps, steps_succeeded, created_at, ended_at \
             FROM workflows WHERE ($1::text IS NULL OR state = $1) \
             AND ($2::text IS NULL OR template = $2) AND ($3::uuid IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .await?;
    let state = p.state.map(|s| s.as_str());
    let before = p.before.map(|b| b.0);
    let limit = i64::from(p.limit);
    let mut out = Vec::new();
    for r in client
        .query(&stmt, &[&state, &p.template, &before, &limit])
        .await?
    {
        out.push(WorkflowSummary {
            id: WorkflowId(r.column(0)?),
            name: r.column(1)?,
            template: r.column(2)?,
            state: WorkflowState::parse(&r.column::<String>(3)?).map_err(corrupt)?,
            failed_step: r.column(4)?,
            steps: u32::try_from(r.column::<i32>(5)?).unwrap_or(0),
            steps_succeeded: u32::try_from(r.column::<i32>(6)?.max(0)).unwrap_or(0),
            created_at: to_timestamp(r.column(7)?),
            ended_at: r.column::<Option<i64>>(8)?.map(to_timestamp),
        });
    }
    Ok(out)
}

async fn lock_existing(client: &impl GenericClient, id: WorkflowId) -> QResult<Locked> {
    workflow_apply::lock(client, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Cancels a running workflow.
pub(crate) async fn cancel(client: &impl GenericClient, id: WorkflowId) -> QResult<Workflow> {
    let mut wf = lock_existing(client, id).await?;
    if wf.state != WorkflowState::Running {
        return Err(wrong_state(format!(
            "workflow {id} is {}: only a running workflow is cancelled",
            wf.state.as_str()
        )));
    }
    let stmt = client
        .prepare_cached(
            "UPDATE workflows SET cancel_requested = true, updated_at = errand_now() WHERE id = $1",
        )
        .await?;
    client.execute(&stmt, &[&id.0]).await?;
    wf.cancel_requested = true;
    let facts = workflow_apply::facts(client, &wf).await?;
    let plan = workflow::advance(&facts, &WorkflowEvent::CancelRequested);
    let mut events = EventRows::default();
    let cancelled = workflow_apply::apply(client, &wf, None, plan, &mut events).await?;
    events.append(client).await?;
    record_plan_cancels(client, &cancelled).await?;
    get(client, id).await
}

/// Resumes an ended (not succeeded) workflow from its failed steps.
pub(crate) async fn retry(client: &impl GenericClient, id: WorkflowId) -> QResult<Workflow> {
    let wf = lock_existing(client, id).await?;
    let facts = workflow_apply::facts(client, &wf).await?;
    let stmt = client
        .prepare_cached(
            "SELECT name, depends_on, job_id, max_attempts FROM workflow_steps WHERE workflow_id = $1",
        )
        .await?;
    let mut parents: HashMap<String, Vec<String>> = HashMap::new();
    let mut job_of: HashMap<String, JobId> = HashMap::new();
    let mut max_of: HashMap<String, i32> = HashMap::new();
    for r in client.query(&stmt, &[&id.0]).await? {
        let name: String = r.column(0)?;
        let deps: Vec<String> = serde_json::from_value(r.column(1)?).map_err(corrupt)?;
        job_of.insert(name.clone(), JobId(r.column(2)?));
        max_of.insert(name.clone(), r.column(3)?);
        parents.insert(name, deps);
    }
    let plan = workflow::plan_retry(&facts, &parents).map_err(|e| wrong_state(e.message))?;
    // Kept steps keep their order of completion, numbered from 1.
    let stmt = client
        .prepare_cached(
            "UPDATE workflow_steps s SET completed_seq = r.rn FROM ( \
                 SELECT name, row_number() OVER (ORDER BY completed_seq NULLS LAST, position) AS rn \
                 FROM workflow_steps WHERE workflow_id = $1 AND name = ANY($2)) r \
             WHERE s.workflow_id = $1 AND s.name = r.name",
        )
        .await?;
    client.execute(&stmt, &[&id.0, &plan.keep]).await?;
    let mut events = EventRows::default();
    let reset_sql = format!(
        "UPDATE jobs SET state = CASE WHEN $2 > 0 THEN 'blocked' ELSE 'available' END, \
             waiting_for = $2, run_at = errand_now(), max_attempts = attempt + $3, worker = NULL, \
             lease_token = NULL, lease_expires_at = NULL, result = NULL, error = NULL, \
             finished_at = NULL, progress = NULL, context = $4, \
             deadline_at = CASE WHEN $2 = 0 AND deadline_ms IS NOT NULL THEN errand_now() + deadline_ms END, \
             deadline_retried = false, parked = false, updated_at = errand_now() \
         WHERE id = $1 AND state IN ('succeeded', 'dead', 'cancelled') RETURNING {JOB_COLUMNS}"
    );
    let reset = client.prepare_cached(&reset_sql).await?;
    let unlink = client
        .prepare_cached("DELETE FROM job_deps WHERE child_id = $1")
        .await?;
    let link = client
        .prepare_cached(
            "INSERT INTO job_deps (parent_id, child_id) SELECT unnest($1::uuid[]), $2 \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let step_row = client
        .prepare_cached(
            "UPDATE workflow_steps SET state = $3, compensation_job_id = NULL, completed_seq = NULL \
             WHERE workflow_id = $1 AND name = $2",
        )
        .await?;
    let rerun: BTreeMap<String, u32> = plan.rerun;
    for (name, waiting) in &rerun {
        let Some(job_id) = job_of.get(name).copied() else {
            continue;
        };
        let deps = parents.get(name).cloned().unwrap_or_default();
        let dep_jobs: Vec<JobId> = deps.iter().filter_map(|d| job_of.get(d).copied()).collect();
        let context = if *waiting == 0 {
            Some(flow_end::step_context(client, id, name, &dep_jobs).await?)
        } else {
            None
        };
        let waiting_i = i32::try_from(*waiting).unwrap_or(i32::MAX);
        let max = max_of.get(name).copied().unwrap_or(1);
        let Some(row) = client
            .query_opt(&reset, &[&job_id.0, &waiting_i, &max, &context])
            .await?
        else {
            // Its job was pruned, or runs again (revived on its own before the refusal
            // existed): nothing to reset (the transaction is rolled back).
            return Err(wrong_state(format!(
                "step {name} of workflow {id} cannot run again now: its job {job_id} was pruned or is not stopped"
            )));
        };
        let job = job_from_row(&row)?;
        client.execute(&unlink, &[&job_id.0]).await?;
        let rerun_parents: Vec<uuid::Uuid> = deps
            .iter()
            .filter(|d| rerun.contains_key(*d))
            .filter_map(|d| job_of.get(d).map(|j| j.0))
            .collect();
        if !rerun_parents.is_empty() {
            client.execute(&link, &[&rerun_parents, &job_id.0]).await?;
        }
        client
            .execute(&step_row, &[&id.0, name, &job.state.as_str()])
            .await?;
        if job.state == JobState::Available {
            wake::note(job.queue.as_str());
        }
        events.push_job(&job, EventType::JobEnqueued)?;
    }
    let kept = i32::try_from(plan.keep.len()).unwrap_or(i32::MAX);
    let stmt = client
        .prepare_cached(
            "UPDATE workflows SET state = 'running', failed_step = NULL, error = NULL, \
                 cancel_requested = false, retries = retries + 1, ended_at = NULL, \
                 steps_succeeded = $2, updated_at = errand_now() WHERE id = $1",
        )
        .await?;
    client.execute(&stmt, &[&id.0, &kept]).await?;
    events.append(client).await?;
    get(client, id).await
}

/// Acts on up to `limit` step jobs whose deadline passed, each once across nodes. Each
/// step's workflow row is locked first (workflows in id order), then its job row `SKIP
/// LOCKED` and checked again: a step another supervisor acted on, or that its workflow's
/// failure cancelled meanwhile, is left alone; a job row held by a settle is skipped (the
/// settle ends it). Holding a workflow row, nothing waits for a job row.
pub(crate) async fn supervise(
    client: &impl GenericClient,
    limit: u32,
) -> QResult<Vec<SupervisedStep>> {
    let stmt = client
        .prepare_cached(
            "SELECT id, workflow_id FROM jobs \
             WHERE deadline_at <= errand_now() AND state IN ('available', 'scheduled', 'running') \
               AND deadline_at IS NOT NULL AND step_role = 'step' AND workflow_id IS NOT NULL \
             ORDER BY deadline_at LIMIT $1",
        )
        .await?;
    let mut due: Vec<(uuid::Uuid, uuid::Uuid)> = Vec::new();
    for r in client.query(&stmt, &[&i64::from(limit)]).await? {
        due.push((r.column(1)?, r.column(0)?));
    }
    due.sort();
    let recheck = client
        .prepare_cached(
            "SELECT id, state, workflow_id, step, on_deadline, deadline_retried, deadline_ms, attempt, \
                 errand_now() FROM jobs \
             WHERE id = $1 AND deadline_at <= errand_now() \
               AND state IN ('available', 'scheduled', 'running') \
             FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let mut out = Vec::new();
    for (wf_id, job_id) in due {
        if workflow_apply::lock(client, WorkflowId(wf_id))
            .await?
            .is_none()
        {
            continue;
        }
        let Some(r) = client.query_opt(&recheck, &[&job_id]).await? else {
            continue;
        };
        let id = JobId(r.column(0)?);
        let was: JobState = r.column::<String>(1)?.parse().map_err(corrupt)?;
        let (Some(wf), Some(step)) = (
            r.column::<Option<uuid::Uuid>>(2)?,
            r.column::<Option<String>>(3)?,
        ) else {
            continue;
        };
        let policy = r
            .column::<Option<String>>(4)?
            .map(|p| DeadlinePolicy::parse(&p))
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default();
        let retried: bool = r.column(5)?;
        let deadline_ms: i64 = r.column::<Option<i64>>(6)?.unwrap_or(0);
        let attempt: i32 = r.column(7)?;
        let now: i64 = r.column(8)?;
        let action = if policy == DeadlinePolicy::Retry && !retried {
            DeadlinePolicy::Retry
        } else {
            DeadlinePolicy::Fail
        };
        let job = match action {
            DeadlinePolicy::Retry => retry_step(client, id, was, attempt).await?,
            DeadlinePolicy::Fail => {
                // Worded as the SQLite store words it.
                let error = format!("deadline of {deadline_ms}ms passed");
                fail_step(client, id, attempt, &error).await?
            }
        };
        let seen = Supervision {
            at: to_timestamp(now),
            action,
            was,
        };
        let seen = serde_json::to_value([seen])
            .map_err(|e| Fault::Store(StoreError::Internal(e.to_string())))?;
        let stmt = client
            .prepare_cached(
                "UPDATE workflow_steps SET supervised = supervised || $3::jsonb \
                 WHERE workflow_id = $1 AND name = $2",
            )
            .await?;
        client.execute(&stmt, &[&wf, &step, &seen]).await?;
        out.push(SupervisedStep {
            workflow: WorkflowId(wf),
            step,
            job,
            action,
        });
    }
    Ok(out)
}

/// The supervisor's one retry: a running attempt fails (timed out) and the job is
/// available again with one more attempt; either way its deadline starts over.
async fn retry_step(
    client: &impl GenericClient,
    id: JobId,
    was: JobState,
    attempt: i32,
) -> QResult<Job> {
    let sql = format!(
        "WITH r AS ( \
             UPDATE jobs SET state = CASE WHEN state = 'running' THEN 'available' ELSE state END, \
                 run_at = CASE WHEN state = 'running' THEN errand_now() ELSE run_at END, \
                 max_attempts = CASE WHEN state = 'running' THEN max_attempts + 1 ELSE max_attempts END, \
                 error = CASE WHEN state = 'running' THEN 'deadline passed' ELSE error END, \
                 lease_token = NULL, lease_expires_at = NULL, \
                 deadline_at = errand_now() + deadline_ms, deadline_retried = true, \
                 updated_at = errand_now() WHERE id = $1 RETURNING *), \
         a AS ( \
             UPDATE job_attempts SET finished_at = errand_now(), outcome = 'timed_out', \
                 error = 'deadline passed' \
             WHERE job_id = $1 AND attempt = $2 AND $3 AND outcome = 'running') \
         SELECT {JOB_COLUMNS} FROM r"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let running = was == JobState::Running;
    let row = client
        .query_one(&stmt, &[&id.0, &attempt, &running])
        .await?;
    let job = job_from_row(&row)?;
    if running {
        record_change(client, &job, EventType::JobFailed).await?;
        wake::note(job.queue.as_str());
    }
    Ok(job)
}

/// The step is dead: its deadline passed (a running lease is voided). Its end goes
/// through the end hook, so its workflow fails.
async fn fail_step(
    client: &impl GenericClient,
    id: JobId,
    attempt: i32,
    error: &str,
) -> QResult<Job> {
    let sql = format!(
        "WITH d AS ( \
             UPDATE jobs SET state = 'dead', error = $2, finished_at = errand_now(), \
                 lease_token = NULL, lease_expires_at = NULL, updated_at = errand_now() \
             WHERE id = $1 RETURNING *), \
         a AS ( \
             UPDATE job_attempts SET finished_at = errand_now(), outcome = 'timed_out', error = $2 \
             WHERE job_id = $1 AND attempt = $3 AND outcome = 'running') \
         SELECT {JOB_COLUMNS} FROM d"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client.query_one(&stmt, &[&id.0, &error, &attempt]).await?;
    let job = job_from_row(&row)?;
    let gated: Vec<&Job> = [&job]
        .into_iter()
        .filter(|j| j.ordering.gate().is_some())
        .collect();
    if !gated.is_empty() {
        crate::gate::release(client, &gated, &[]).await?;
    }
    record_change(client, &job, EventType::JobDead).await?;
    Ok(job)
}

/// Stores a template (replacing one of the same name).
pub(crate) async fn template_put(
    client: &impl GenericClient,
    name: &str,
    spec: &WorkflowSpec,
) -> QResult<()> {
    let spec =
        serde_json::to_value(spec).map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO workflow_templates (name, spec, updated_at) VALUES ($1, $2, errand_now()) \
             ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = EXCLUDED.updated_at",
        )
        .await?;
    client.execute(&stmt, &[&name, &spec]).await?;
    Ok(())
}

fn template_not_found(name: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("workflow template {name}"),
    })
}

/// One template.
pub(crate) async fn template_get(client: &impl GenericClient, name: &str) -> QResult<WorkflowSpec> {
    let stmt = client
        .prepare_cached("SELECT spec FROM workflow_templates WHERE name = $1")
        .await?;
    let row = client
        .query_opt(&stmt, &[&name])
        .await?
        .ok_or_else(|| template_not_found(name))?;
    serde_json::from_value(row.column(0)?).map_err(corrupt)
}

/// Every template, by name.
pub(crate) async fn template_list(
    client: &impl GenericClient,
) -> QResult<Vec<(String, WorkflowSpec)>> {
    let stmt = client
        .prepare_cached("SELECT name, spec FROM workflow_templates ORDER BY name")
        .await?;
    client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.column::<String>(0)?,
                serde_json::from_value(r.column(1)?).map_err(corrupt)?,
            ))
        })
        .collect()
}

/// Deletes a template.
pub(crate) async fn template_delete(client: &impl GenericClient, name: &str) -> QResult<()> {
    let stmt = client
        .prepare_cached("DELETE FROM workflow_templates WHERE name = $1")
        .await?;
    if client.execute(&stmt, &[&name]).await? == 0 {
        return Err(template_not_found(name));
    }
    Ok(())
}
