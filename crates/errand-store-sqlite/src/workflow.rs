//! Workflows: their rows and steps, what a step's or compensation's end does to them (the
//! workflow part of the end hook, deciding with [`errand_core::workflow::advance`]), and
//! the workflow operations: create, get, list, cancel, retry, supervise, templates.

use std::collections::{HashMap, VecDeque};

use errand_core::flow::{DeadlinePolicy, StepRef, StepRole};
use errand_core::schedule_spec::JobTemplate;
use errand_core::workflow::{
    advance, plan_retry, Advance, CompensationView, OnStepFailure, StepFact, Supervision, Workflow,
    WorkflowEvent, WorkflowFacts, WorkflowSpec, WorkflowState, WorkflowStep, WorkflowSummary,
};
use errand_core::{
    AttemptOutcome, EventType, Job, JobId, JobKind, JobState, Millis, QueueName, WorkflowId,
};
use errand_store::{StoreError, SupervisedStep, WorkflowCreateParams, WorkflowListParams};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::fault::{Fault, QResult};
use crate::flow::{
    cancel_for_flow, corrupt, insert_for_flow, job_id, job_state, json, ready_at_insert,
};
use crate::flow_end::{drain, Ended};
use crate::job_row::{load_job, query_jobs, JOB_COLUMNS};
use crate::transition::{record_change, record_plain};
use crate::{gate, job_write, wake};

fn not_found(id: WorkflowId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("workflow {id}"),
    })
}

fn ms(v: Option<Millis>) -> Option<jiff::Timestamp> {
    v.map(errand_core::time::to_timestamp)
}

fn text_json<T: serde::Serialize>(v: &T) -> QResult<String> {
    serde_json::to_string(v).map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))
}

/// What the end hook reads of a workflow row.
struct Head {
    state: WorkflowState,
    on_failure: OnStepFailure,
    cancel_requested: bool,
    steps: i64,
    steps_succeeded: i64,
}

fn head(conn: &Connection, id: WorkflowId) -> QResult<Option<Head>> {
    let row: Option<(String, String, bool, i64, i64)> = conn
        .prepare_cached(
            "SELECT state, on_failure, cancel_requested, steps, steps_succeeded \
             FROM workflows WHERE id = ?1",
        )?
        .query_row([id.as_bytes().as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    row.map(
        |(state, on_failure, cancel_requested, steps, steps_succeeded)| {
            Ok(Head {
                state: WorkflowState::parse(&state).map_err(corrupt)?,
                on_failure: OnStepFailure::parse(&on_failure).map_err(corrupt)?,
                cancel_requested,
                steps,
                steps_succeeded,
            })
        },
    )
    .transpose()
}

/// Every step as [`advance`] sees it, read now.
fn facts(conn: &Connection, id: WorkflowId, h: &Head) -> QResult<WorkflowFacts> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.name, s.job_id, COALESCE(j.state, s.state), s.compensate IS NOT NULL, \
         s.completed_seq, s.compensation_job_id IS NOT NULL, c.state \
         FROM workflow_steps s LEFT JOIN jobs j ON j.id = s.job_id \
         LEFT JOIN jobs c ON c.id = s.compensation_job_id \
         WHERE s.workflow_id = ?1 ORDER BY s.position",
    )?;
    let mut rows = stmt.query([id.as_bytes().as_slice()])?;
    let mut steps = Vec::new();
    while let Some(r) = rows.next()? {
        let jid: Vec<u8> = r.get(1)?;
        let state: String = r.get(2)?;
        let has_comp: bool = r.get(5)?;
        let comp: Option<String> = r.get(6)?;
        steps.push(StepFact {
            name: r.get(0)?,
            job_id: job_id(&jid)?,
            state: job_state(&state)?,
            compensable: r.get(3)?,
            completed_seq: r.get::<_, Option<i64>>(4)?.map(|v| v.max(0) as u64),
            // A compensation job pruned after it ended counts as having succeeded.
            compensation: match (has_comp, comp) {
                (true, Some(s)) => Some(job_state(&s)?),
                (true, None) => Some(JobState::Succeeded),
                (false, _) => None,
            },
        });
    }
    Ok(WorkflowFacts {
        state: h.state,
        on_failure: h.on_failure,
        cancel_requested: h.cancel_requested,
        steps,
    })
}

/// The workflow part of the end hook: a step or compensation of workflow `wf` ended.
pub(crate) fn job_ended(
    conn: &Connection,
    now: Millis,
    wf: WorkflowId,
    job: &Job,
    work: &mut VecDeque<Ended>,
) -> QResult<()> {
    let Some(step) = job.flow.step.as_deref() else {
        return Ok(());
    };
    let Some(h) = head(conn, wf)? else {
        return Ok(());
    };
    let event = match job.flow.step_role.unwrap_or(StepRole::Step) {
        StepRole::Step => {
            conn.prepare_cached(
                "UPDATE workflow_steps SET state = ?3 WHERE workflow_id = ?1 AND name = ?2",
            )?
            .execute(params![wf.as_bytes().as_slice(), step, job.state.as_str()])?;
            if job.state == JobState::Succeeded && h.state == WorkflowState::Running {
                return counted_success(conn, now, wf, step, &h);
            }
            WorkflowEvent::StepEnded {
                step: step.to_string(),
                state: job.state,
                error: job.error.clone(),
            }
        }
        StepRole::Compensate => WorkflowEvent::CompensationEnded {
            step: step.to_string(),
            state: job.state,
            error: job.error.clone(),
        },
    };
    let facts = facts(conn, wf, &h)?;
    let plan = advance(&facts, &event);
    let ended_step = match &event {
        WorkflowEvent::StepEnded { step, .. } => Some(step.as_str()),
        _ => None,
    };
    apply(conn, now, wf, ended_step, h.cancel_requested, &plan, work)
}

/// A step succeeded in a running workflow: counted without loading every step. It gets
/// the next completion number; the last one succeeds the workflow. Gives what [`advance`]
/// gives: completion numbers stay 1..n without gaps (a retry renumbers the kept steps), so
/// the count plus one is the highest plus one, and "every step succeeded" is the count
/// reaching the number of steps.
fn counted_success(
    conn: &Connection,
    now: Millis,
    wf: WorkflowId,
    step: &str,
    h: &Head,
) -> QResult<()> {
    let seq = h.steps_succeeded + 1;
    conn.prepare_cached(
        "UPDATE workflow_steps SET completed_seq = ?3 WHERE workflow_id = ?1 AND name = ?2",
    )?
    .execute(params![wf.as_bytes().as_slice(), step, seq])?;
    let done = seq >= h.steps;
    conn.prepare_cached(
        "UPDATE workflows SET steps_succeeded = ?2, updated_at = ?3, \
         state = CASE WHEN ?4 THEN 'succeeded' ELSE state END, \
         ended_at = CASE WHEN ?4 THEN ?3 ELSE ended_at END WHERE id = ?1",
    )?
    .execute(params![wf.as_bytes().as_slice(), seq, now, done])?;
    Ok(())
}

/// Applies a plan of [`advance`] in the transaction of the change.
fn apply(
    conn: &Connection,
    now: Millis,
    wf: WorkflowId,
    ended_step: Option<&str>,
    cancel_requested: bool,
    plan: &Advance,
    work: &mut VecDeque<Ended>,
) -> QResult<()> {
    if *plan == Advance::default() {
        // Nothing follows (a revived step of an ended workflow changes nothing in it).
        return Ok(());
    }
    let wfb = wf.as_bytes().as_slice();
    if let (Some(seq), Some(step)) = (plan.completed_seq, ended_step) {
        conn.prepare_cached(
            "UPDATE workflow_steps SET completed_seq = ?3 WHERE workflow_id = ?1 AND name = ?2",
        )?
        .execute(params![wfb, step, seq as i64])?;
        conn.prepare_cached(
            "UPDATE workflows SET steps_succeeded = steps_succeeded + 1 WHERE id = ?1",
        )?
        .execute([wfb])?;
    }
    if let Some((step, why)) = &plan.failure {
        conn.prepare_cached(
            "UPDATE workflows SET failed_step = COALESCE(failed_step, ?2), \
             error = COALESCE(error, ?3) WHERE id = ?1",
        )?
        .execute(params![wfb, step, why])?;
    }
    let why = if cancel_requested {
        "cancelled: the workflow was cancelled"
    } else {
        "cancelled: the workflow failed"
    };
    for id in &plan.cancel {
        if let Some(job) = cancel_for_flow(conn, now, *id, why)? {
            if let Some(step) = &job.flow.step {
                conn.prepare_cached(
                    "UPDATE workflow_steps SET state = 'cancelled' \
                     WHERE workflow_id = ?1 AND name = ?2",
                )?
                .execute(params![wfb, step])?;
            }
            work.push_back(Ended {
                job,
                workflow: false,
            });
        }
    }
    if let Some(step) = &plan.compensate {
        let template: Option<String> = conn
            .prepare_cached(
                "SELECT compensate FROM workflow_steps WHERE workflow_id = ?1 AND name = ?2",
            )?
            .query_row(params![wfb, step], |r| r.get(0))
            .optional()?
            .flatten();
        let template: JobTemplate = template
            .ok_or_else(|| corrupt(format!("step {step} has no compensate template")))
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| corrupt(format!("compensate: {e}")))
            })?;
        let mut job = template.new_job(None);
        job.flow.step = Some(StepRef {
            workflow: wf,
            step: step.clone(),
            role: StepRole::Compensate,
            deadline_ms: None,
            on_deadline: DeadlinePolicy::Fail,
        });
        let id = insert_for_flow(conn, now, job)?;
        conn.prepare_cached(
            "UPDATE workflow_steps SET compensation_job_id = ?3 WHERE workflow_id = ?1 AND name = ?2",
        )?
        .execute(params![wfb, step, id.as_bytes().as_slice()])?;
    }
    let state = plan.state.map(|s| s.as_str());
    let ended = plan.state.is_some_and(|s| s.is_final());
    conn.prepare_cached(
        "UPDATE workflows SET state = COALESCE(?2, state), updated_at = ?3, \
         ended_at = CASE WHEN ?4 THEN ?3 ELSE ended_at END WHERE id = ?1",
    )?
    .execute(params![wfb, state, now, ended])?;
    Ok(())
}

/// Creates a workflow, its steps and their jobs; a live idempotency key returns the first.
pub(crate) fn create(
    conn: &Connection,
    now: Millis,
    params: WorkflowCreateParams,
) -> QResult<(Workflow, bool)> {
    let w = params.workflow;
    let window = i64::try_from(params.idempotency_window.as_millis()).unwrap_or(i64::MAX);
    if let Some(key) = &w.idempotency_key {
        let found: Option<(Vec<u8>, Option<Millis>)> = conn
            .prepare_cached(
                "SELECT id, idempotency_expires_at FROM workflows WHERE idempotency_key = ?1",
            )?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((id, expires)) = found {
            if expires.unwrap_or(0) > now {
                let id = WorkflowId::from_slice(&id).ok_or_else(|| corrupt("workflow id"))?;
                return Ok((get(conn, id)?, false));
            }
            conn.prepare_cached(
                "UPDATE workflows SET idempotency_key = NULL, idempotency_expires_at = NULL \
                 WHERE id = ?1",
            )?
            .execute([id])?;
        }
    }
    let wfb = w.id.as_bytes().as_slice();
    conn.prepare_cached(
        "INSERT INTO workflows (id, name, template, state, input, on_failure, idempotency_key, \
         idempotency_expires_at, steps, created_at, updated_at) \
         VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![
        wfb,
        w.name,
        w.template,
        w.input.to_string(),
        w.on_failure.as_str(),
        w.idempotency_key,
        w.idempotency_key
            .as_ref()
            .map(|_| now.saturating_add(window)),
        w.steps.len() as i64,
        now,
    ])?;
    let ids: HashMap<&str, JobId> = w
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.job.id))
        .collect();
    let mut jobs = Vec::with_capacity(w.steps.len());
    {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO workflow_steps (workflow_id, name, position, job_id, kind, queue, \
             depends_on, compensate, max_attempts, deadline_ms, on_deadline, state) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for (pos, s) in w.steps.iter().enumerate() {
            let mut after = Vec::with_capacity(s.depends_on.len());
            for d in &s.depends_on {
                let id = ids.get(d.as_str()).ok_or_else(|| {
                    Fault::Store(StoreError::Invalid(format!(
                        "step {} depends on {d}, which is not a step",
                        s.name
                    )))
                })?;
                after.push(*id);
            }
            let step_ref = s.job.flow.step.clone();
            stmt.execute(params![
                wfb,
                s.name,
                pos as i64,
                s.job.id.as_bytes().as_slice(),
                s.job.kind.as_str(),
                s.job.queue.as_str(),
                text_json(&s.depends_on)?,
                s.compensate.as_ref().map(text_json).transpose()?,
                s.job.max_attempts,
                step_ref
                    .as_ref()
                    .and_then(|r| r.deadline_ms)
                    .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                step_ref
                    .as_ref()
                    .map_or(DeadlinePolicy::Fail, |r| r.on_deadline)
                    .as_str(),
                if after.is_empty() {
                    "available"
                } else {
                    "blocked"
                },
            ])?;
            let mut job = s.job.clone();
            if job.flow.step.is_none() {
                job.flow.step = Some(StepRef {
                    workflow: w.id,
                    step: s.name.clone(),
                    role: StepRole::Step,
                    deadline_ms: None,
                    on_deadline: DeadlinePolicy::Fail,
                });
            }
            jobs.push(job);
            let last = jobs.len() - 1;
            jobs[last].flow.after = after;
        }
    }
    let prepared = job_write::prepare(jobs)?;
    job_write::insert_many(conn, now, prepared, params.idempotency_window)?;
    for s in &w.steps {
        if s.depends_on.is_empty() {
            wake::ready(s.job.queue.as_str());
        }
    }
    Ok((get(conn, w.id)?, true))
}

/// One workflow with every step, in declaration order.
pub(crate) fn get(conn: &Connection, id: WorkflowId) -> QResult<Workflow> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, template, state, input, on_failure, failed_step, error, retries, \
         idempotency_key, created_at, updated_at, ended_at FROM workflows WHERE id = ?1",
    )?;
    let mut rows = stmt.query([id.as_bytes().as_slice()])?;
    let Some(r) = rows.next()? else {
        return Err(not_found(id));
    };
    let state: String = r.get(2)?;
    let input: String = r.get(3)?;
    let on_failure: String = r.get(4)?;
    let mut wf = Workflow {
        id,
        name: r.get(0)?,
        template: r.get(1)?,
        state: WorkflowState::parse(&state).map_err(corrupt)?,
        input: serde_json::from_str(&input).map_err(|e| corrupt(format!("input: {e}")))?,
        on_failure: OnStepFailure::parse(&on_failure).map_err(corrupt)?,
        failed_step: r.get(5)?,
        error: r.get(6)?,
        retries: r.get(7)?,
        idempotency_key: r.get(8)?,
        created_at: errand_core::time::to_timestamp(r.get(9)?),
        updated_at: errand_core::time::to_timestamp(r.get(10)?),
        ended_at: ms(r.get(11)?),
        steps: Vec::new(),
    };
    drop(rows);
    let mut stmt = conn.prepare_cached(
        "SELECT s.name, s.depends_on, s.job_id, COALESCE(j.kind, s.kind), \
         COALESCE(j.queue, s.queue), COALESCE(j.state, s.state), j.attempt, \
         COALESCE(j.max_attempts, s.max_attempts), j.started_at, j.finished_at, j.result, \
         j.error, j.deadline_at, s.supervised, s.compensation_job_id, c.state, c.error \
         FROM workflow_steps s LEFT JOIN jobs j ON j.id = s.job_id \
         LEFT JOIN jobs c ON c.id = s.compensation_job_id \
         WHERE s.workflow_id = ?1 ORDER BY s.position",
    )?;
    let mut rows = stmt.query([id.as_bytes().as_slice()])?;
    while let Some(r) = rows.next()? {
        wf.steps.push(step_from_row(r)?);
    }
    Ok(wf)
}

fn step_from_row(r: &Row<'_>) -> QResult<WorkflowStep> {
    let depends_on: String = r.get(1)?;
    let jid: Vec<u8> = r.get(2)?;
    let kind: String = r.get(3)?;
    let queue: String = r.get(4)?;
    let state: String = r.get(5)?;
    let supervised: String = r.get(13)?;
    let comp: Option<Vec<u8>> = r.get(14)?;
    let comp_state: Option<String> = r.get(15)?;
    let compensation = match comp {
        Some(c) => Some(CompensationView {
            job_id: job_id(&c)?,
            state: comp_state
                .as_deref()
                .map(job_state)
                .transpose()?
                .unwrap_or(JobState::Succeeded),
            error: r.get(16)?,
        }),
        None => None,
    };
    Ok(WorkflowStep {
        name: r.get(0)?,
        depends_on: serde_json::from_str(&depends_on)
            .map_err(|e| corrupt(format!("depends_on: {e}")))?,
        job_id: job_id(&jid)?,
        kind: JobKind::parse(&kind).map_err(corrupt)?,
        queue: QueueName::parse(&queue).map_err(corrupt)?,
        state: job_state(&state)?,
        attempt: r.get::<_, Option<u32>>(6)?.unwrap_or(0),
        max_attempts: r.get(7)?,
        started_at: ms(r.get(8)?),
        finished_at: ms(r.get(9)?),
        result: json(r.get(10)?)?,
        error: r.get(11)?,
        deadline_at: ms(r.get(12)?),
        supervised: serde_json::from_str(&supervised)
            .map_err(|e| corrupt(format!("supervised: {e}")))?,
        compensation,
    })
}

/// A page of workflows, newest first.
pub(crate) fn list(conn: &Connection, p: &WorkflowListParams) -> QResult<Vec<WorkflowSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, template, state, failed_step, steps, steps_succeeded, created_at, \
         ended_at FROM workflows WHERE (?1 IS NULL OR state = ?1) \
         AND (?2 IS NULL OR template = ?2) AND (?3 IS NULL OR id < ?3) \
         ORDER BY id DESC LIMIT +?4",
    )?;
    let mut rows = stmt.query(params![
        p.state.map(|s| s.as_str()),
        p.template,
        p.before.map(|b| b.as_bytes().to_vec()),
        p.limit
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: Vec<u8> = r.get(0)?;
        let state: String = r.get(3)?;
        out.push(WorkflowSummary {
            id: WorkflowId::from_slice(&id).ok_or_else(|| corrupt("workflow id"))?,
            name: r.get(1)?,
            template: r.get(2)?,
            state: WorkflowState::parse(&state).map_err(corrupt)?,
            failed_step: r.get(4)?,
            steps: r.get(5)?,
            steps_succeeded: r.get(6)?,
            created_at: errand_core::time::to_timestamp(r.get(7)?),
            ended_at: ms(r.get(8)?),
        });
    }
    Ok(out)
}

/// Cancels a running workflow.
pub(crate) fn cancel(conn: &Connection, now: Millis, id: WorkflowId) -> QResult<Workflow> {
    let Some(mut h) = head(conn, id)? else {
        return Err(not_found(id));
    };
    if h.state != WorkflowState::Running {
        return Err(Fault::Store(StoreError::WrongState(format!(
            "workflow {id} is {}; only a running workflow can be cancelled",
            h.state.as_str()
        ))));
    }
    conn.prepare_cached("UPDATE workflows SET cancel_requested = 1 WHERE id = ?1")?
        .execute([id.as_bytes().as_slice()])?;
    h.cancel_requested = true;
    let facts = facts(conn, id, &h)?;
    let plan = advance(&facts, &WorkflowEvent::CancelRequested);
    let mut work = VecDeque::new();
    apply(conn, now, id, None, true, &plan, &mut work)?;
    drain(conn, now, work)?;
    get(conn, id)
}

/// Resumes an ended workflow from its failed steps.
pub(crate) fn retry(conn: &Connection, now: Millis, id: WorkflowId) -> QResult<Workflow> {
    let Some(h) = head(conn, id)? else {
        return Err(not_found(id));
    };
    let facts = facts(conn, id, &h)?;
    let rows: Vec<(String, String, Vec<u8>, u32)> = conn
        .prepare_cached(
            "SELECT name, depends_on, job_id, max_attempts FROM workflow_steps \
             WHERE workflow_id = ?1",
        )?
        .query_map([id.as_bytes().as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut parents: HashMap<String, Vec<String>> = HashMap::new();
    let mut steps: HashMap<String, (JobId, u32)> = HashMap::new();
    for (name, deps, jid, max) in rows {
        let deps: Vec<String> =
            serde_json::from_str(&deps).map_err(|e| corrupt(format!("depends_on: {e}")))?;
        steps.insert(name.clone(), (job_id(&jid)?, max));
        parents.insert(name, deps);
    }
    let plan = plan_retry(&facts, &parents)
        .map_err(|e| Fault::Store(StoreError::WrongState(e.message)))?;
    let wfb = id.as_bytes().as_slice();
    conn.prepare_cached(
        "UPDATE workflow_steps SET compensation_job_id = NULL, completed_seq = NULL \
         WHERE workflow_id = ?1",
    )?
    .execute([wfb])?;
    // The kept steps are numbered again 1..k in their order of completion, so the next
    // success's number is the count plus one (see `counted_success`).
    let keep: std::collections::HashSet<&str> = plan.keep.iter().map(String::as_str).collect();
    let mut kept: Vec<&StepFact> = facts
        .steps
        .iter()
        .filter(|s| keep.contains(s.name.as_str()))
        .collect();
    kept.sort_by_key(|s| s.completed_seq.unwrap_or(0));
    for (i, s) in kept.iter().enumerate() {
        conn.prepare_cached(
            "UPDATE workflow_steps SET completed_seq = ?3 WHERE workflow_id = ?1 AND name = ?2",
        )?
        .execute(params![wfb, s.name, (i + 1) as i64])?;
    }
    conn.prepare_cached(
        "UPDATE workflows SET state = 'running', failed_step = NULL, error = NULL, \
         cancel_requested = 0, retries = retries + 1, ended_at = NULL, steps_succeeded = ?2, \
         updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![wfb, kept.len() as i64, now])?;
    for (name, waiting) in &plan.rerun {
        let Some((jid, max)) = steps.get(name) else {
            continue;
        };
        let state = if *waiting > 0 { "blocked" } else { "available" };
        let n = conn
            .prepare_cached(
                "UPDATE jobs SET state = ?2, waiting_for = ?3, run_at = ?4, \
                 max_attempts = attempt + ?5, lease_token = NULL, lease_expires_at = NULL, \
                 result = NULL, error = NULL, finished_at = NULL, deadline_at = NULL, \
                 deadline_retried = 0, context = NULL, parked = 0, updated_at = ?4 \
                 WHERE id = ?1 AND state IN ('succeeded', 'dead', 'cancelled')",
            )?
            .execute(params![jid.as_bytes().as_slice(), state, waiting, now, max])?;
        if n == 0 {
            return Err(Fault::Store(StoreError::WrongState(format!(
                "step {name}'s job {jid} was pruned or is running again; the workflow cannot be retried now"
            ))));
        }
        conn.prepare_cached(
            "UPDATE workflow_steps SET state = ?3 WHERE workflow_id = ?1 AND name = ?2",
        )?
        .execute(params![wfb, name, state])?;
        // Its rerun parents' ends count again when they end again.
        for parent in parents.get(name).into_iter().flatten() {
            if let (true, Some((pid, _))) = (plan.rerun.contains_key(parent), steps.get(parent)) {
                conn.prepare_cached(
                    "UPDATE job_deps SET counted = 0 WHERE parent_id = ?1 AND child_id = ?2",
                )?
                .execute(params![
                    pid.as_bytes().as_slice(),
                    jid.as_bytes().as_slice()
                ])?;
            }
        }
        if *waiting == 0 {
            ready_at_insert(conn, now, *jid)?;
        }
        let mut job = load_job(conn, *jid)?;
        if *waiting == 0 {
            gate::revived(conn, now, &mut job)?;
            wake::ready(job.queue.as_str());
        }
        record_plain(conn, now, &job, EventType::JobEnqueued)?;
    }
    get(conn, id)
}

/// A step job found past its deadline.
struct Overdue {
    jid: Vec<u8>,
    step: String,
    state: String,
    policy: Option<String>,
    retried: bool,
    deadline_ms: Option<i64>,
    attempt: u32,
    parked: bool,
}

/// Acts on up to `limit` steps whose deadline passed.
pub(crate) fn supervise(
    conn: &Connection,
    now: Millis,
    limit: u32,
) -> QResult<Vec<SupervisedStep>> {
    let due: Vec<Overdue> = conn
        .prepare_cached(
            "SELECT id, step, state, on_deadline, deadline_retried, deadline_ms, attempt, parked \
             FROM jobs INDEXED BY jobs_deadline WHERE deadline_at <= ?1 \
             AND state IN ('available', 'scheduled', 'running') AND step_role = 'step' \
             ORDER BY deadline_at LIMIT +?2",
        )?
        .query_map(params![now, limit], |r| {
            Ok(Overdue {
                jid: r.get(0)?,
                step: r.get(1)?,
                state: r.get(2)?,
                policy: r.get(3)?,
                retried: r.get(4)?,
                deadline_ms: r.get(5)?,
                attempt: r.get(6)?,
                parked: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(due.len());
    for o in due {
        let Overdue {
            jid,
            step,
            state,
            policy,
            retried,
            deadline_ms,
            attempt,
            parked,
        } = o;
        let id = job_id(&jid)?;
        let was = job_state(&state)?;
        let policy = policy
            .as_deref()
            .map(DeadlinePolicy::parse)
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default();
        let deadline_ms = deadline_ms.unwrap_or(0);
        let action = if policy == DeadlinePolicy::Retry && !retried {
            DeadlinePolicy::Retry
        } else {
            DeadlinePolicy::Fail
        };
        let job = match action {
            DeadlinePolicy::Retry => {
                let mut stmt = conn.prepare_cached(&format!(
                    "UPDATE jobs SET state = CASE WHEN state = 'running' THEN 'available' \
                     ELSE state END, \
                     run_at = CASE WHEN state = 'running' THEN ?1 ELSE run_at END, \
                     error = CASE WHEN state = 'running' THEN 'deadline passed' ELSE error END, \
                     lease_token = NULL, lease_expires_at = NULL, \
                     max_attempts = max_attempts + (state = 'running'), deadline_at = ?1 + ?2, \
                     deadline_retried = 1, updated_at = ?1 WHERE id = ?3 AND state = ?4 \
                     RETURNING {JOB_COLUMNS}"
                ))?;
                // An earlier step of this pass may have ended it (its workflow failed).
                let Some(job) = query_jobs(&mut stmt, params![now, deadline_ms, jid, state])?.pop()
                else {
                    continue;
                };
                if was == JobState::Running {
                    crate::job_settle::close_attempt(
                        conn,
                        now,
                        id,
                        attempt,
                        AttemptOutcome::TimedOut,
                        Some("deadline passed"),
                    )?;
                    record_change(conn, now, &job, EventType::JobFailed)?;
                }
                wake::ready(job.queue.as_str());
                job
            }
            DeadlinePolicy::Fail => {
                let error = format!("deadline of {deadline_ms}ms passed");
                let mut stmt = conn.prepare_cached(&format!(
                    "UPDATE jobs SET state = 'dead', error = ?2, finished_at = ?1, \
                     lease_token = NULL, lease_expires_at = NULL, parked = 0, updated_at = ?1 \
                     WHERE id = ?3 AND state = ?4 RETURNING {JOB_COLUMNS}"
                ))?;
                let Some(mut job) = query_jobs(&mut stmt, params![now, error, jid, state])?.pop()
                else {
                    continue;
                };
                if was == JobState::Running {
                    crate::job_settle::close_attempt(
                        conn,
                        now,
                        id,
                        attempt,
                        AttemptOutcome::TimedOut,
                        Some(&error),
                    )?;
                }
                if parked {
                    gate::left_line(conn, now, &job)?;
                } else {
                    for q in gate::released(conn, now, &mut job)? {
                        wake::ready(&q);
                    }
                }
                record_change(conn, now, &job, EventType::JobDead)?;
                load_job(conn, id)?
            }
        };
        let Some(wf) = job.flow.workflow_id else {
            continue;
        };
        let note = text_json(&Supervision {
            at: errand_core::time::to_timestamp(now),
            action,
            was,
        })?;
        conn.prepare_cached(
            "UPDATE workflow_steps SET supervised = json_insert(supervised, '$[#]', json(?3)) \
             WHERE workflow_id = ?1 AND name = ?2",
        )?
        .execute(params![wf.as_bytes().as_slice(), step, note])?;
        out.push(SupervisedStep {
            workflow: wf,
            step,
            job,
            action,
        });
    }
    Ok(out)
}

/// Stores a template, replacing one of the same name.
pub(crate) fn template_put(
    conn: &Connection,
    now: Millis,
    name: &str,
    spec: &WorkflowSpec,
) -> QResult<()> {
    conn.prepare_cached(
        "INSERT INTO workflow_templates (name, spec, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
    )?
    .execute(params![name, text_json(spec)?, now])?;
    Ok(())
}

fn template_not_found(name: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("workflow template {name}"),
    })
}

fn spec_of(text: &str) -> QResult<WorkflowSpec> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("workflow template: {e}")))
}

/// One template.
pub(crate) fn template_get(conn: &Connection, name: &str) -> QResult<WorkflowSpec> {
    let text: Option<String> = conn
        .prepare_cached("SELECT spec FROM workflow_templates WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    spec_of(&text.ok_or_else(|| template_not_found(name))?)
}

/// Every template, by name.
pub(crate) fn template_list(conn: &Connection) -> QResult<Vec<(String, WorkflowSpec)>> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached("SELECT name, spec FROM workflow_templates ORDER BY name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(n, s)| Ok((n, spec_of(&s)?)))
        .collect()
}

/// Deletes a template.
pub(crate) fn template_delete(conn: &Connection, name: &str) -> QResult<()> {
    let n = conn
        .prepare_cached("DELETE FROM workflow_templates WHERE name = ?1")?
        .execute([name])?;
    if n == 0 {
        return Err(template_not_found(name));
    }
    Ok(())
}
