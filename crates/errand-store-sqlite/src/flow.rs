//! The job side of flows: a new job's parents (checked, counted, linked), the context a job
//! gets when it becomes ready, making a waiting job ready, and cancelling a job for its
//! flow. The end hook ([`crate::flow_end`]) and the workflow and batch operations build on
//! these.

use errand_core::flow::{
    compensation_context, continuation_context, doomed_error, parent_end, step_context, ParentEnd,
    StepRole, WorkflowRef,
};
use errand_core::{AttemptOutcome, EventType, Job, JobId, JobState, Millis, NewJob, WorkflowId};
use errand_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::fault::{Fault, QResult};
use crate::job_row::{load_job, query_jobs, JOB_COLUMNS};
use crate::transition::record_plain;
use crate::{gate, wake};

pub(crate) fn corrupt(what: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(what.to_string()))
}

/// Reads a stored job id.
pub(crate) fn job_id(bytes: &[u8]) -> QResult<JobId> {
    JobId::from_slice(bytes).ok_or_else(|| corrupt("job id is not 16 bytes"))
}

/// Reads a stored job state.
pub(crate) fn job_state(text: &str) -> QResult<JobState> {
    text.parse::<JobState>().map_err(corrupt)
}

/// Reads a stored JSON column.
pub(crate) fn json(text: Option<String>) -> QResult<Option<Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("stored JSON: {e}"))))
        .transpose()
}

/// How a new job starts, by its parents.
#[derive(Debug, Default)]
pub(crate) struct Wait {
    /// Parents not ended yet (as required).
    pub(crate) waiting_for: u32,
    /// Set when a parent already ended so that the job can never run: it is inserted
    /// cancelled with this error.
    pub(crate) doomed: Option<String>,
}

/// Checks and counts a new job's parents before its row is written: each must exist (an
/// earlier job of the same insert counts), and one already ended counts at once by
/// [`parent_end`]. A workflow step's parents are steps of its own new workflow, none of
/// them ended (and maybe inserted after it), so they are counted without a look.
///
/// # Errors
/// `NotFound` for a missing parent.
pub(crate) fn count_parents(conn: &Connection, job: &NewJob) -> QResult<Wait> {
    let f = &job.flow;
    if f.after.is_empty() {
        return Ok(Wait::default());
    }
    if matches!(&f.step, Some(s) if s.role == StepRole::Step) {
        return Ok(Wait {
            waiting_for: u32::try_from(f.after.len()).unwrap_or(u32::MAX),
            doomed: None,
        });
    }
    let mut stmt = conn.prepare_cached("SELECT state FROM jobs WHERE id = ?1")?;
    let mut wait = Wait::default();
    for parent in &f.after {
        let state: Option<String> = stmt
            .query_row([parent.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        let Some(state) = state else {
            return Err(Fault::Store(StoreError::job_not_found(parent)));
        };
        let state = job_state(&state)?;
        match parent_end(state, f.after_any_end) {
            ParentEnd::Satisfied => {}
            ParentEnd::Doomed => {
                if wait.doomed.is_none() {
                    wait.doomed = Some(doomed_error(*parent, state));
                }
            }
            ParentEnd::NotYet => wait.waiting_for += 1,
        }
    }
    Ok(wait)
}

/// Writes the edges from a new job to its parents; a parent that has ended already was
/// counted by the insert, so its edge is written counted (a parent inserted later in the
/// same call, as a workflow's steps may be, has not ended).
pub(crate) fn link(conn: &Connection, child: JobId, parents: &[JobId]) -> QResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO job_deps (parent_id, child_id, counted) \
         VALUES (?1, ?2, COALESCE((SELECT state IN ('succeeded', 'dead', 'cancelled') FROM jobs WHERE id = ?1), 0)) \
         ON CONFLICT DO NOTHING",
    )?;
    for p in parents {
        stmt.execute(params![
            p.as_bytes().as_slice(),
            child.as_bytes().as_slice()
        ])?;
    }
    Ok(())
}

/// A workflow's id, name and input, owned.
pub(crate) struct WorkflowHead {
    pub(crate) id: WorkflowId,
    pub(crate) name: Option<String>,
    pub(crate) input: Value,
}

impl WorkflowHead {
    /// Reads it; `NotFound` when missing.
    pub(crate) fn load(conn: &Connection, id: WorkflowId) -> QResult<Self> {
        let row: Option<(Option<String>, String)> = conn
            .prepare_cached("SELECT name, input FROM workflows WHERE id = ?1")?
            .query_row([id.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (name, input) = row.ok_or_else(|| {
            Fault::Store(StoreError::NotFound {
                what: format!("workflow {id}"),
            })
        })?;
        Ok(Self {
            id,
            name,
            input: serde_json::from_str(&input).map_err(|e| corrupt(format!("input: {e}")))?,
        })
    }

    /// As the contexts name it.
    pub(crate) fn as_ref(&self) -> WorkflowRef<'_> {
        WorkflowRef {
            id: self.id,
            name: self.name.as_deref(),
            input: &self.input,
        }
    }
}

/// The context a job gets when it becomes ready, by what it is: a step gets its workflow's
/// input and its parents' results by step name, a compensation the result of the step it
/// undoes, a continuation each parent's end. Other jobs get none.
pub(crate) fn context_for(conn: &Connection, id: JobId) -> QResult<Option<Value>> {
    let (wf, step, role, after): (Option<Vec<u8>>, Option<String>, Option<String>, bool) = conn
        .prepare_cached(
            "SELECT workflow_id, step, step_role, after_jobs IS NOT NULL FROM jobs WHERE id = ?1",
        )?
        .query_row([id.as_bytes().as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    let role = role
        .map(|r| StepRole::parse(&r).map_err(corrupt))
        .transpose()?;
    match (wf, step, role) {
        (Some(wf), Some(step), Some(role)) => {
            let wf = WorkflowId::from_slice(&wf).ok_or_else(|| corrupt("workflow id"))?;
            let head = WorkflowHead::load(conn, wf)?;
            match role {
                StepRole::Step => {
                    let mut stmt = conn.prepare_cached(
                        "SELECT p.step, p.result FROM job_deps d JOIN jobs p ON p.id = d.parent_id \
                         WHERE d.child_id = ?1",
                    )?;
                    let mut rows = stmt.query([id.as_bytes().as_slice()])?;
                    let mut parents = Vec::new();
                    while let Some(r) = rows.next()? {
                        let name: Option<String> = r.get(0)?;
                        parents.push((name.unwrap_or_default(), json(r.get(1)?)?));
                    }
                    Ok(Some(step_context(&head.as_ref(), &step, &parents)))
                }
                StepRole::Compensate => {
                    let result: Option<String> = conn
                        .prepare_cached(
                            "SELECT j.result FROM workflow_steps s JOIN jobs j ON j.id = s.job_id \
                             WHERE s.workflow_id = ?1 AND s.name = ?2",
                        )?
                        .query_row(params![wf.as_bytes().as_slice(), step], |r| r.get(0))
                        .optional()?
                        .flatten();
                    let result = json(result)?;
                    Ok(Some(compensation_context(
                        &head.as_ref(),
                        &step,
                        result.as_ref(),
                    )))
                }
            }
        }
        _ if after => {
            let mut stmt = conn.prepare_cached(
                "SELECT p.id, p.state, p.result, p.error FROM job_deps d \
                 JOIN jobs p ON p.id = d.parent_id WHERE d.child_id = ?1",
            )?;
            let mut rows = stmt.query([id.as_bytes().as_slice()])?;
            let mut parents = Vec::new();
            while let Some(r) = rows.next()? {
                let pid: Vec<u8> = r.get(0)?;
                let state: String = r.get(1)?;
                parents.push((
                    job_id(&pid)?,
                    job_state(&state)?,
                    json(r.get(2)?)?,
                    r.get(3)?,
                ));
            }
            Ok(Some(continuation_context(&parents)))
        }
        _ => Ok(None),
    }
}

/// Writes the context (and a step's deadline) of a job inserted ready.
pub(crate) fn ready_at_insert(conn: &Connection, now: Millis, id: JobId) -> QResult<()> {
    let context = context_for(conn, id)?.map(|v| v.to_string());
    conn.prepare_cached(
        "UPDATE jobs SET context = ?2, deadline_at = CASE WHEN deadline_ms IS NULL THEN NULL \
         ELSE ?1 + deadline_ms END WHERE id = ?3",
    )?
    .execute(params![now, context, id.as_bytes().as_slice()])?;
    Ok(())
}

/// Makes a waiting job whose parents are all satisfied ready: available now, with its
/// context and deadline; it joins its gate's line, gets its `job.enqueued`, and its queue's
/// claimers are woken after the commit.
pub(crate) fn make_ready(conn: &Connection, now: Millis, id: JobId) -> QResult<Job> {
    let context = context_for(conn, id)?.map(|v| v.to_string());
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = 'available', run_at = ?1, updated_at = ?1, waiting_for = 0, \
         context = ?2, deadline_at = CASE WHEN deadline_ms IS NULL THEN NULL \
         ELSE ?1 + deadline_ms END WHERE id = ?3 RETURNING {JOB_COLUMNS}"
    ))?;
    let mut job = query_jobs(&mut stmt, params![now, context, id.as_bytes().as_slice()])?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    gate::revived(conn, now, &mut job)?;
    record_plain(conn, now, &job, EventType::JobEnqueued)?;
    wake::ready(job.queue.as_str());
    Ok(job)
}

/// Cancels a job that has not ended for its flow (a doomed continuation, a workflow step
/// the workflow's failure or cancel stops) with `error`: a running one loses its lease, so
/// its worker's later settle is `LeaseLost`. Records `job.cancelled` but not the end hook;
/// the caller carries the end on. `None` when the job already ended or is gone.
pub(crate) fn cancel_for_flow(
    conn: &Connection,
    now: Millis,
    id: JobId,
    error: &str,
) -> QResult<Option<Job>> {
    let before = match load_job(conn, id) {
        Ok(j) => j,
        Err(Fault::Store(StoreError::NotFound { .. })) => return Ok(None),
        Err(e) => return Err(e),
    };
    if before.state.is_final() {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = 'cancelled', error = ?2, finished_at = ?1, lease_token = NULL, \
         lease_expires_at = NULL, parked = 0, updated_at = ?1 WHERE id = ?3 \
         RETURNING {JOB_COLUMNS}"
    ))?;
    let mut job = query_jobs(&mut stmt, params![now, error, id.as_bytes().as_slice()])?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    if before.state == JobState::Running {
        crate::job_settle::close_attempt(
            conn,
            now,
            id,
            before.attempt,
            AttemptOutcome::Cancelled,
            Some(error),
        )?;
    }
    if before.state != JobState::Blocked {
        if before.parked {
            gate::left_line(conn, now, &job)?;
        } else {
            for q in gate::released(conn, now, &mut job)? {
                wake::ready(&q);
            }
        }
    }
    record_plain(conn, now, &job, EventType::JobCancelled)?;
    Ok(Some(job))
}

/// Inserts one job made by a flow and wakes its queue after the commit. Returns its id.
pub(crate) fn insert_for_flow(conn: &Connection, now: Millis, job: NewJob) -> QResult<JobId> {
    let queue = job.queue.as_str().to_string();
    let prepared = crate::job_write::prepare(vec![job])?;
    let inserted = crate::job_write::insert_many(conn, now, prepared, std::time::Duration::ZERO)?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::Internal("an insert of one gave none".into())))?;
    wake::ready(&queue);
    Ok(inserted.job.id)
}
