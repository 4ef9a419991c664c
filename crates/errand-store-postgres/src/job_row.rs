//! Reading rows back into domain values.

use errand_core::flow::{JobFlow, StepRole};
use errand_core::ordering::JobOrdering;
use errand_core::time::to_timestamp;
use errand_core::{Attempt, AttemptOutcome, Job, JobId, JobKind, JobState, Millis, QueueName};
use errand_core::{BatchId, WorkflowId};
use serde_json::Value;
use tokio_postgres::Row;

use crate::fault::{corrupt, QResult, RowExt};

/// The columns [`job_from_row`] reads, in its order.
pub(crate) const JOB_COLUMNS: &str = "id, kind, queue, state, payload, priority, run_at, attempt, \
     max_attempts, timeout_ms, tags, idempotency_key, result, error, progress, checkpoint, worker, \
     lease_expires_at, created_at, updated_at, started_at, finished_at, schedule_name, schedule_slot, \
     reply_to, correlation_id, callback_url, gate, gate_limit, session_on_dead, fairness_key, \
     fairness_weight, rate_key, parked, workflow_id, step, step_role, batch_id, after_jobs, after_any_end, \
     waiting_for, context, deadline_at, secrets";

/// How many columns [`JOB_COLUMNS`] names.
pub(crate) const JOB_COLUMN_COUNT: usize = 44;

/// The same columns qualified by a table alias, for joins and `RETURNING`.
pub(crate) fn job_columns(alias: &str) -> String {
    JOB_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn count(row: &Row, idx: usize) -> QResult<u32> {
    let v: i32 = row.column(idx)?;
    u32::try_from(v).map_err(|_| corrupt(format!("column {idx} is negative")))
}

fn opt_count(row: &Row, idx: usize) -> QResult<Option<u32>> {
    let v: Option<i32> = row.column(idx)?;
    v.map(|v| u32::try_from(v).map_err(|_| corrupt(format!("column {idx} is negative"))))
        .transpose()
}

fn instant(row: &Row, idx: usize) -> QResult<Option<jiff::Timestamp>> {
    Ok(row.column::<Option<Millis>>(idx)?.map(to_timestamp))
}

/// Builds a job from a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &Row) -> QResult<Job> {
    let kind: String = row.column(1)?;
    let queue: String = row.column(2)?;
    let state: String = row.column(3)?;
    let tags: Value = row.column(10)?;
    Ok(Job {
        flow: flow_from_row(row)?,
        reply_to: row
            .column::<Option<String>>(24)?
            .map(|q| QueueName::parse(&q))
            .transpose()
            .map_err(corrupt)?,
        correlation_id: row.column(25)?,
        callback_url: row.column(26)?,
        id: JobId(row.column(0)?),
        kind: JobKind::parse(&kind).map_err(corrupt)?,
        queue: QueueName::parse(&queue).map_err(corrupt)?,
        state: state.parse::<JobState>().map_err(corrupt)?,
        payload: row.column(4)?,
        priority: row.column(5)?,
        run_at: to_timestamp(row.column(6)?),
        attempt: count(row, 7)?,
        max_attempts: count(row, 8)?,
        timeout_ms: row.column::<Option<i64>>(9)?.map(|v| v.max(0) as u64),
        tags: serde_json::from_value(tags).map_err(corrupt)?,
        idempotency_key: row.column(11)?,
        result: row.column(12)?,
        error: row.column(13)?,
        progress: row
            .column::<Option<Value>>(14)?
            .map(serde_json::from_value)
            .transpose()
            .map_err(corrupt)?,
        checkpoint: row.column(15)?,
        worker: row.column(16)?,
        lease_expires_at: instant(row, 17)?,
        created_at: to_timestamp(row.column(18)?),
        updated_at: to_timestamp(row.column(19)?),
        started_at: instant(row, 20)?,
        finished_at: instant(row, 21)?,
        schedule: row.column(22)?,
        slot: instant(row, 23)?,
        ordering: JobOrdering::from_stored(
            row.column::<Option<String>>(27)?.as_deref(),
            opt_count(row, 28)?,
            row.column::<Option<String>>(29)?.as_deref(),
            row.column(30)?,
            opt_count(row, 31)?,
            row.column(32)?,
        )
        .map_err(corrupt)?,
        parked: row.column(33)?,
        secrets: errand_core::Secrets::from_stored_json(row.column(43)?).map_err(corrupt)?,
    })
}

/// Reads a job's place in a flow (columns 34 to 42 of [`JOB_COLUMNS`]).
fn flow_from_row(row: &Row) -> QResult<JobFlow> {
    let after: Option<Value> = row.column(38)?;
    Ok(JobFlow {
        workflow_id: row.column::<Option<uuid::Uuid>>(34)?.map(WorkflowId),
        step: row.column(35)?,
        step_role: row
            .column::<Option<String>>(36)?
            .map(|r| StepRole::parse(&r))
            .transpose()
            .map_err(corrupt)?,
        batch_id: row.column::<Option<uuid::Uuid>>(37)?.map(BatchId),
        after: after
            .map(serde_json::from_value::<Vec<JobId>>)
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default(),
        after_any_end: row.column(39)?,
        waiting_for: count(row, 40)?,
        context: row.column(41)?,
        deadline_at: instant(row, 42)?,
    })
}

/// Builds jobs from rows.
pub(crate) fn jobs_from_rows(rows: &[Row]) -> QResult<Vec<Job>> {
    rows.iter().map(job_from_row).collect()
}

/// The columns [`attempt_from_row`] reads.
pub(crate) const ATTEMPT_COLUMNS: &str =
    "attempt, worker, started_at, finished_at, outcome, error, report";

/// Builds an attempt from a row selected with [`ATTEMPT_COLUMNS`].
pub(crate) fn attempt_from_row(row: &Row) -> QResult<Attempt> {
    let outcome: String = row.column(4)?;
    Ok(Attempt {
        attempt: count(row, 0)?,
        worker: row.column(1)?,
        started_at: to_timestamp(row.column(2)?),
        finished_at: instant(row, 3)?,
        outcome: AttemptOutcome::from_stored(&outcome).map_err(corrupt)?,
        error: row.column(5)?,
        report: row
            .column::<Option<Value>>(6)?
            .map(serde_json::from_value)
            .transpose()
            .map_err(corrupt)?,
    })
}

/// Converts a duration to stored milliseconds.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
