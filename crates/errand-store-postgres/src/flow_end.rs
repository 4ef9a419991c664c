//! What a job's end does to the flows it is part of, in the transaction of the end: its
//! workflow advances ([`workflow_apply`]), its children count it (released at their last
//! parent, or cancelled when it doomed them, which cascades), and its batch counts it
//! (completing at its last job). Jobs without children, workflow or batch cost one
//! statement per call, however many ended.
//!
//! Locks are taken in one order: the ended job's row (by the statement that ended it),
//! then workflow rows in id order, then child job rows in id order, then batch rows in id
//! order. Holding a workflow row, a transaction never waits for a job row another
//! transaction may hold: the jobs a workflow's plan cancels are locked `SKIP LOCKED`, and
//! children are `blocked` jobs nobody else holds but another end's hook, which takes them
//! after the workflow row too.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::GenericClient;
use errand_core::flow::{self, ParentEnd, StepRole, WorkflowRef};
use errand_core::{BatchId, EventType, Job, JobId, JobState, WorkflowId};
use serde_json::Value;

use crate::array_rows::in_array;
use crate::batch_store;
use crate::fault::{corrupt, QResult, RowExt};
use crate::job_row::{job_columns, jobs_from_rows};
use crate::plan_mode::query_batch;
use crate::transition::EventRows;
use crate::{wake, workflow_apply};

/// Applies the flow consequences of `ended` (jobs that just became final, as they are now).
/// `workflow_hook`: whether their workflows advance (not for jobs a workflow plan itself
/// cancelled: the plan counted them). Returns the further jobs the flows ended (cancelled
/// steps and doomed continuations), their events already pushed, for the caller to give
/// them their replies and callbacks.
///
/// `ends` are every ended job's id and state (their children are looked up in one
/// statement); `flows` are those of them with a workflow or batch.
pub(crate) async fn on_end(
    client: &impl GenericClient,
    ends: Vec<(uuid::Uuid, JobState)>,
    flows: Vec<Job>,
    workflow_hook: bool,
    events: &mut EventRows,
) -> QResult<Vec<Job>> {
    let mut extra = Vec::new();
    let mut round = flows;
    let mut round_ends = ends;
    let mut hook = workflow_hook;
    while !round_ends.is_empty() {
        let mut next = Vec::new();
        // Jobs cancelled by a workflow plan: their children and batches, not the workflow.
        let mut cancelled_by_plan = Vec::new();
        if hook {
            let mut steps: Vec<&Job> = round
                .iter()
                .filter(|j| j.flow.workflow_id.is_some())
                .collect();
            steps.sort_by_key(|j| j.flow.workflow_id);
            for job in steps {
                let more = workflow_apply::on_job_end(client, job, events).await?;
                cancelled_by_plan.extend(more);
            }
        } else {
            for job in round.iter().filter(|j| j.flow.workflow_id.is_some()) {
                workflow_apply::note_step_state(client, job).await?;
            }
        }
        next.extend(children(client, &round_ends, events).await?);
        count_in_batches(client, &round, events).await?;
        for j in &cancelled_by_plan {
            events.push_job(j, EventType::JobCancelled)?;
        }
        // Jobs the plans cancelled go through children and batches without the workflow.
        if !cancelled_by_plan.is_empty() {
            next.extend(children(client, &ends_of(&cancelled_by_plan), events).await?);
            count_in_batches(client, &cancelled_by_plan, events).await?;
            extra.extend(cancelled_by_plan);
        }
        for j in &next {
            events.push_job(j, EventType::JobCancelled)?;
        }
        extra.extend(next.iter().cloned());
        round_ends = ends_of(&next);
        round = next;
        hook = true;
    }
    Ok(extra)
}

fn ends_of(jobs: &[Job]) -> Vec<(uuid::Uuid, JobState)> {
    jobs.iter().map(|j| (j.id.0, j.state)).collect()
}

/// Counts the ends in `ended` for their children: releases those whose last parent this
/// was, cancels the continuations an end doomed. Returns the jobs cancelled. The edges
/// are consumed (a parent revived and ended again does not count twice).
async fn children(
    client: &impl GenericClient,
    ended: &[(uuid::Uuid, JobState)],
    events: &mut EventRows,
) -> QResult<Vec<Job>> {
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<uuid::Uuid> = ended.iter().map(|(id, _)| *id).collect();
    let sql = format!(
        "WITH d AS (DELETE FROM job_deps WHERE parent_id {} RETURNING parent_id, child_id) \
         SELECT d.parent_id, d.child_id, c.after_any_end, c.step_role FROM d \
         JOIN jobs c ON c.id = d.child_id",
        in_array(ids.len(), "$1::uuid")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = query_batch(client, ids.len(), &stmt, &[&ids]).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let states: HashMap<uuid::Uuid, JobState> = ended.iter().copied().collect();
    // Per child: parents satisfied, and the first parent that doomed it.
    let mut satisfied: BTreeMap<uuid::Uuid, i32> = BTreeMap::new();
    let mut doomed: BTreeMap<uuid::Uuid, (JobId, JobState)> = BTreeMap::new();
    for row in &rows {
        let parent: uuid::Uuid = row.column(0)?;
        let child: uuid::Uuid = row.column(1)?;
        let any_end: bool = row.column(2)?;
        let is_step = row.column::<Option<String>>(3)?.is_some();
        let Some(&state) = states.get(&parent) else {
            continue;
        };
        match flow::parent_end(state, any_end) {
            ParentEnd::Satisfied => *satisfied.entry(child).or_default() += 1,
            // A step's doom is its workflow's business (the workflow hook ran first).
            ParentEnd::Doomed if !is_step => {
                doomed.entry(child).or_insert((JobId(parent), state));
            }
            _ => {}
        }
    }
    let mut lock: Vec<uuid::Uuid> = satisfied.keys().chain(doomed.keys()).copied().collect();
    lock.sort();
    lock.dedup();
    if lock.len() > 1 {
        // Two ends releasing the same children lock them in one order.
        let stmt = client
            .prepare_cached("SELECT id FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .await?;
        client.query(&stmt, &[&lock]).await?;
    }
    if !satisfied.is_empty() {
        release(client, &satisfied, events).await?;
    }
    let mut cancelled = Vec::new();
    if !doomed.is_empty() {
        let sql = format!(
            "UPDATE jobs j SET state = 'cancelled', error = u.err, finished_at = errand_now(), \
                 updated_at = errand_now() \
             FROM UNNEST($1::uuid[], $2::text[]) AS u(id, err) \
             WHERE j.id = u.id AND j.state = 'blocked' RETURNING {}",
            job_columns("j")
        );
        let stmt = client.prepare_cached(&sql).await?;
        let (ids, errs): (Vec<uuid::Uuid>, Vec<String>) = doomed
            .iter()
            .map(|(c, (p, s))| (*c, flow::doomed_error(*p, *s)))
            .unzip();
        cancelled = jobs_from_rows(&client.query(&stmt, &[&ids, &errs]).await?)?;
    }
    Ok(cancelled)
}

/// Counts `satisfied` parents off their children and makes those with none left (still
/// `blocked`) ready now, with their context and deadline.
async fn release(
    client: &impl GenericClient,
    satisfied: &BTreeMap<uuid::Uuid, i32>,
    events: &mut EventRows,
) -> QResult<()> {
    let (ids, counts): (Vec<uuid::Uuid>, Vec<i32>) =
        satisfied.iter().map(|(c, n)| (*c, *n)).unzip();
    let stmt = client
        .prepare_cached(
            "UPDATE jobs j SET waiting_for = GREATEST(j.waiting_for - u.n, 0) \
             FROM UNNEST($1::uuid[], $2::int[]) AS u(id, n) WHERE j.id = u.id \
             RETURNING j.id, j.waiting_for = 0 AND j.state = 'blocked', j.workflow_id, j.step, \
                 j.after_jobs",
        )
        .await?;
    let rows = client.query(&stmt, &[&ids, &counts]).await?;
    let mut ready = Vec::new();
    let mut contexts = Vec::new();
    for row in &rows {
        if !row.column::<bool>(1)? {
            continue;
        }
        let id: uuid::Uuid = row.column(0)?;
        let workflow: Option<uuid::Uuid> = row.column(2)?;
        let step: Option<String> = row.column(3)?;
        let after: Option<Value> = row.column(4)?;
        let after: Vec<JobId> = after
            .map(serde_json::from_value)
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default();
        let context = match (workflow, step) {
            (Some(w), Some(step)) => step_context(client, WorkflowId(w), &step, &after).await?,
            _ => continuation_context(client, &after).await?,
        };
        ready.push(id);
        contexts.push(context);
    }
    if ready.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE jobs j SET state = 'available', run_at = errand_now(), context = u.ctx, \
             deadline_at = CASE WHEN j.deadline_ms IS NOT NULL THEN errand_now() + j.deadline_ms END, \
             updated_at = errand_now() \
         FROM UNNEST($1::uuid[], $2::jsonb[]) AS u(id, ctx) WHERE j.id = u.id RETURNING {}",
        job_columns("j")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let mut jobs = jobs_from_rows(&client.query(&stmt, &[&ready, &contexts]).await?)?;
    // A gated job enters its gate now that it is ready (it waited outside while blocked).
    let arrivals: Vec<crate::gate::Arrival> = jobs
        .iter()
        .filter_map(|j| {
            j.ordering.gate().map(|gate| crate::gate::Arrival {
                id: j.id.0,
                gate,
                due: true,
            })
        })
        .collect();
    if !arrivals.is_empty() {
        let parked = crate::gate::arrive(client, &arrivals, true).await?;
        for j in &mut jobs {
            j.parked = parked.contains(&j.id.0);
        }
    }
    for job in &jobs {
        wake::note(job.queue.as_str());
        events.push_job(job, EventType::JobEnqueued)?;
    }
    Ok(())
}

/// A step's context: its workflow's input and its parents' results by step name.
pub(crate) async fn step_context(
    client: &impl GenericClient,
    workflow: WorkflowId,
    step: &str,
    parents: &[JobId],
) -> QResult<Value> {
    let stmt = client
        .prepare_cached("SELECT name, input FROM workflows WHERE id = $1")
        .await?;
    let row = client.query_one(&stmt, &[&workflow.0]).await?;
    let name: Option<String> = row.column(0)?;
    let input: Value = row.column(1)?;
    let ids: Vec<uuid::Uuid> = parents.iter().map(|p| p.0).collect();
    let stmt = client
        .prepare_cached("SELECT step, result FROM jobs WHERE id = ANY($1) AND step IS NOT NULL")
        .await?;
    let mut results = Vec::new();
    for row in client.query(&stmt, &[&ids]).await? {
        results.push((row.column::<String>(0)?, row.column::<Option<Value>>(1)?));
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(flow::step_context(
        &WorkflowRef {
            id: workflow,
            name: name.as_deref(),
            input: &input,
        },
        step,
        &results,
    ))
}

/// A continuation's context: each parent's state, result and error.
async fn continuation_context(client: &impl GenericClient, parents: &[JobId]) -> QResult<Value> {
    let ids: Vec<uuid::Uuid> = parents.iter().map(|p| p.0).collect();
    let stmt = client
        .prepare_cached("SELECT id, state, result, error FROM jobs WHERE id = ANY($1)")
        .await?;
    let mut by_id = HashMap::new();
    for row in client.query(&stmt, &[&ids]).await? {
        let state: String = row.column(1)?;
        by_id.insert(
            row.column::<uuid::Uuid>(0)?,
            (
                state.parse::<JobState>().map_err(corrupt)?,
                row.column::<Option<Value>>(2)?,
                row.column::<Option<String>>(3)?,
            ),
        );
    }
    let listed: Vec<_> = parents
        .iter()
        .filter_map(|p| by_id.remove(&p.0).map(|(s, r, e)| (*p, s, r, e)))
        .collect();
    Ok(flow::continuation_context(&listed))
}

/// Counts the ends of batch jobs on their batches (in batch id order) and completes the
/// batches whose last job this was.
async fn count_in_batches(
    client: &impl GenericClient,
    ended: &[Job],
    events: &mut EventRows,
) -> QResult<()> {
    let mut per: BTreeMap<BatchId, [i64; 3]> = BTreeMap::new();
    for job in ended {
        let Some(b) = job.flow.batch_id else { continue };
        let slot = match job.state {
            JobState::Succeeded => 0,
            JobState::Dead => 1,
            JobState::Cancelled => 2,
            _ => continue,
        };
        per.entry(b).or_default()[slot] += 1;
    }
    for (batch, [s, d, c]) in per {
        batch_store::count_ends(client, batch, s, d, c, events).await?;
    }
    Ok(())
}

/// The role a workflow job plays.
pub(crate) fn role_of(job: &Job) -> StepRole {
    job.flow.step_role.unwrap_or(StepRole::Step)
}
