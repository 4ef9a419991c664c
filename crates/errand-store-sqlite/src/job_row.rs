//! Reading a job row back into a [`Job`].

use errand_core::flow::{JobFlow, StepRole};
use errand_core::time::to_timestamp;
use errand_core::{Attempt, AttemptOutcome, Job, JobId, JobKind, JobState, Millis, QueueName};
use errand_core::{BatchId, WorkflowId};
use errand_store::StoreError;
use rusqlite::Row;
use serde_json::Value;

use crate::fault::{Fault, QResult};

/// The columns [`job_from_row`] reads, in its order. Every query that returns jobs selects
/// (or returns) exactly these.
pub(crate) const JOB_COLUMNS: &str = "id, kind, queue, state, payload, priority, run_at, attempt, \
     max_attempts, timeout_ms, tags, idempotency_key, result, error, progress, checkpoint, worker, \
     lease_expires_at, created_at, updated_at, started_at, finished_at, schedule_name, schedule_slot, \
     reply_to, correlation_id, callback_url, gate, gate_limit, session_on_dead, fairness_key, \
     fairness_weight, rate_key, parked, workflow_id, step, step_role, batch_id, after_jobs, \
     after_any_end, waiting_for, context, deadline_at, secrets";

/// How many columns [`JOB_COLUMNS`] names: a query that selects more reads them from here on.
pub(crate) const JOB_COLUMN_COUNT: usize = 44;

fn corrupt(what: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(what.to_string()))
}

fn json_column(row: &Row<'_>, idx: usize) -> QResult<Option<Value>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("column {idx}: {e}"))))
        .transpose()
}

fn instant(row: &Row<'_>, idx: usize) -> QResult<Option<jiff::Timestamp>> {
    let ms: Option<Millis> = row.get(idx)?;
    Ok(ms.map(to_timestamp))
}

/// Builds a job from a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &Row<'_>) -> QResult<Job> {
    let id: Vec<u8> = row.get(0)?;
    let kind: String = row.get(1)?;
    let queue: String = row.get(2)?;
    let state: String = row.get(3)?;
    let tags: String = row.get(10)?;
    Ok(Job {
        flow: flow_from_row(row)?,
        reply_to: row
            .get::<_, Option<String>>(24)?
            .map(|q| QueueName::parse(&q))
            .transpose()
            .map_err(corrupt)?,
        correlation_id: row.get(25)?,
        callback_url: row.get(26)?,
        id: JobId::from_slice(&id).ok_or_else(|| corrupt("job id is not 16 bytes"))?,
        kind: JobKind::parse(&kind).map_err(corrupt)?,
        queue: QueueName::parse(&queue).map_err(corrupt)?,
        state: state.parse::<JobState>().map_err(corrupt)?,
        payload: json_column(row, 4)?.unwrap_or(Value::Null),
        priority: row.get(5)?,
        run_at: to_timestamp(row.get(6)?),
        attempt: row.get(7)?,
        max_attempts: row.get(8)?,
        timeout_ms: row.get::<_, Option<i64>>(9)?.map(|v| v.max(0) as u64),
        tags: serde_json::from_str(&tags).map_err(corrupt)?,
        idempotency_key: row.get(11)?,
        result: json_column(row, 12)?,
        error: row.get(13)?,
        progress: json_column(row, 14)?
            .map(serde_json::from_value)
            .transpose()
            .map_err(corrupt)?,
        checkpoint: json_column(row, 15)?,
        worker: row.get(16)?,
        lease_expires_at: instant(row, 17)?,
        created_at: to_timestamp(row.get(18)?),
        updated_at: to_timestamp(row.get(19)?),
        started_at: instant(row, 20)?,
        finished_at: instant(row, 21)?,
        schedule: row.get(22)?,
        slot: instant(row, 23)?,
        ordering: errand_core::ordering::JobOrdering::from_stored(
            row.get::<_, Option<String>>(27)?.as_deref(),
            row.get(28)?,
            row.get::<_, Option<String>>(29)?.as_deref(),
            row.get(30)?,
            row.get(31)?,
            row.get(32)?,
        )
        .map_err(corrupt)?,
        parked: row.get(33)?,
        secrets: errand_core::Secrets::from_stored_json(json_column(row, 43)?).map_err(corrupt)?,
    })
}

/// The flow columns of a row selected with [`JOB_COLUMNS`] (34 to 42).
fn flow_from_row(row: &Row<'_>) -> QResult<JobFlow> {
    let workflow_id = row
        .get::<_, Option<Vec<u8>>>(34)?
        .map(|b| WorkflowId::from_slice(&b).ok_or_else(|| corrupt("workflow id is not 16 bytes")))
        .transpose()?;
    let step_role = row
        .get::<_, Option<String>>(36)?
        .map(|r| StepRole::parse(&r).map_err(corrupt))
        .transpose()?;
    let batch_id = row
        .get::<_, Option<Vec<u8>>>(37)?
        .map(|b| BatchId::from_slice(&b).ok_or_else(|| corrupt("batch id is not 16 bytes")))
        .transpose()?;
    let after: Vec<JobId> = match row.get::<_, Option<String>>(38)? {
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| corrupt(format!("after_jobs: {e}")))?
        }
        None => Vec::new(),
    };
    Ok(JobFlow {
        workflow_id,
        step: row.get(35)?,
        step_role,
        batch_id,
        after,
        after_any_end: row.get(39)?,
        waiting_for: row.get(40)?,
        context: json_column(row, 41)?,
        deadline_at: instant(row, 42)?,
    })
}

/// The columns [`attempt_from_row`] reads.
pub(crate) const ATTEMPT_COLUMNS: &str =
    "attempt, worker, started_at, finished_at, outcome, error, report";

/// Builds an attempt from a row selected with [`ATTEMPT_COLUMNS`].
pub(crate) fn attempt_from_row(row: &Row<'_>) -> QResult<Attempt> {
    let outcome: String = row.get(4)?;
    Ok(Attempt {
        attempt: row.get(0)?,
        worker: row.get(1)?,
        started_at: to_timestamp(row.get(2)?),
        finished_at: instant(row, 3)?,
        outcome: AttemptOutcome::from_stored(&outcome).map_err(corrupt)?,
        error: row.get(5)?,
        report: json_column(row, 6)?
            .map(serde_json::from_value)
            .transpose()
            .map_err(corrupt)?,
    })
}

/// Serialises an optional JSON value for a TEXT column.
pub(crate) fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

/// Runs a query that returns jobs and collects them.
pub(crate) fn query_jobs(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> QResult<Vec<Job>> {
    let mut rows = stmt.query(params)?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next()? {
        jobs.push(job_from_row(row)?);
    }
    Ok(jobs)
}

/// Reads one job by id inside any connection; `NotFound` when it is missing.
pub(crate) fn load_job(conn: &rusqlite::Connection, id: JobId) -> QResult<Job> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?;
    query_jobs(&mut stmt, [id.as_bytes().as_slice()])?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))
}
