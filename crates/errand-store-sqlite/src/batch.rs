//! Batches: their rows, the count of their jobs' ends (in the transaction of each end) and
//! their completion, with its `on_complete` job, its callback (a delivery of the batch
//! under `batch.completed`, [`errand_core::delivery::batch_callback`]) and a
//! `batch.completed` event in the log.

use errand_core::batch::{self, Batch, BatchCounts, BatchState, NewBatch};
use errand_core::{BatchId, EventBody, JobState, Millis};
use errand_store::{BatchListParams, BatchWrite, InsertedJob, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::delivery_record::insert_deliveries;
use crate::fault::{Fault, QResult};
use crate::flow::{corrupt, insert_for_flow, job_id};
use crate::job_write::{self, PreparedJob};
use crate::transition::record_event;

const COLUMNS: &str = "id, state, total, pending, succeeded, dead, cancelled, on_complete, \
     on_complete_job_id, callback_url, created_at, closed_at, completed_at";

fn not_found(id: BatchId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("batch {id}"),
    })
}

fn counts(row: &Row<'_>, from: usize) -> QResult<BatchCounts> {
    let n = |i: usize| -> QResult<u64> { Ok(row.get::<_, i64>(from + i)?.max(0) as u64) };
    Ok(BatchCounts {
        total: n(0)?,
        pending: n(1)?,
        succeeded: n(2)?,
        dead: n(3)?,
        cancelled: n(4)?,
    })
}

fn from_row(row: &Row<'_>) -> QResult<Batch> {
    let id: Vec<u8> = row.get(0)?;
    let state: String = row.get(1)?;
    let on_complete: Option<String> = row.get(7)?;
    let job: Option<Vec<u8>> = row.get(8)?;
    let at = |i: usize| -> QResult<Option<jiff::Timestamp>> {
        Ok(row
            .get::<_, Option<Millis>>(i)?
            .map(errand_core::time::to_timestamp))
    };
    Ok(Batch {
        id: BatchId::from_slice(&id).ok_or_else(|| corrupt("batch id is not 16 bytes"))?,
        state: BatchState::parse(&state).map_err(corrupt)?,
        counts: counts(row, 2)?,
        on_complete: on_complete
            .map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("on_complete: {e}"))))
            .transpose()?,
        on_complete_job_id: job.map(|b| job_id(&b)).transpose()?,
        callback_url: row.get(9)?,
        created_at: errand_core::time::to_timestamp(row.get(10)?),
        closed_at: at(11)?,
        completed_at: at(12)?,
    })
}

/// One batch; `NotFound` when missing.
pub(crate) fn get(conn: &Connection, id: BatchId) -> QResult<Batch> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM batches WHERE id = ?1"))?;
    let mut rows = stmt.query([id.as_bytes().as_slice()])?;
    match rows.next()? {
        Some(row) => from_row(row),
        None => Err(not_found(id)),
    }
}

/// A page of batches, newest first.
pub(crate) fn list(conn: &Connection, p: &BatchListParams) -> QResult<Vec<Batch>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM batches WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR id < ?2) \
         ORDER BY id DESC LIMIT +?3"
    ))?;
    let mut rows = stmt.query(params![
        p.state.map(|s| s.as_str()),
        p.before.map(|b| b.as_bytes().to_vec()),
        p.limit
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Creates a batch with its first jobs: open while they are inserted (a job inserted
/// already ended must not complete it early), then closed unless asked to stay open, and
/// completed at once when closed with nothing pending.
pub(crate) fn create(
    conn: &Connection,
    now: Millis,
    new: &NewBatch,
    jobs: Vec<PreparedJob>,
    window: std::time::Duration,
) -> QResult<BatchWrite> {
    let on_complete = new
        .on_complete
        .as_ref()
        .map(|t| serde_json::to_string(t).map_err(|e| StoreError::Invalid(e.to_string())))
        .transpose()?;
    conn.prepare_cached(
        "INSERT INTO batches (id, state, on_complete, callback_url, created_at) \
         VALUES (?1, 'open', ?2, ?3, ?4)",
    )?
    .execute(params![
        new.id.as_bytes().as_slice(),
        on_complete,
        new.callback_url,
        now
    ])?;
    let jobs = insert(conn, now, new.id, jobs, window)?;
    if !new.open {
        close(conn, now, new.id)?;
    }
    Ok(BatchWrite {
        batch: get(conn, new.id)?,
        jobs,
    })
}

/// Adds jobs to an open batch.
pub(crate) fn add(
    conn: &Connection,
    now: Millis,
    id: BatchId,
    jobs: Vec<PreparedJob>,
    window: std::time::Duration,
) -> QResult<BatchWrite> {
    let batch = get(conn, id)?;
    if batch.state != BatchState::Open {
        return Err(not_open(id, batch.state));
    }
    let jobs = insert(conn, now, id, jobs, window)?;
    Ok(BatchWrite {
        batch: get(conn, id)?,
        jobs,
    })
}

fn not_open(id: BatchId, state: BatchState) -> Fault {
    Fault::Store(StoreError::WrongState(format!(
        "batch {id} is {}; jobs are added only to an open batch",
        state.as_str()
    )))
}

fn insert(
    conn: &Connection,
    now: Millis,
    id: BatchId,
    mut jobs: Vec<PreparedJob>,
    window: std::time::Duration,
) -> QResult<Vec<InsertedJob>> {
    for j in &mut jobs {
        j.set_batch(id);
    }
    job_write::insert_many(conn, now, jobs, window)
}

/// Closes an open batch (completing it when nothing is pending); a closed or completed one
/// is left as it is.
pub(crate) fn close(conn: &Connection, now: Millis, id: BatchId) -> QResult<Batch> {
    let counted: Option<(i64,)> = conn
        .prepare_cached(
            "UPDATE batches SET state = 'closed', closed_at = ?1 WHERE id = ?2 AND state = 'open' \
             RETURNING pending",
        )?
        .query_row(params![now, id.as_bytes().as_slice()], |r| Ok((r.get(0)?,)))
        .optional()?;
    if let Some((pending,)) = counted {
        if pending <= 0 {
            complete(conn, now, id)?;
        }
    }
    get(conn, id)
}

/// A job of the batch was inserted: one more to wait for. `WrongState` unless open.
pub(crate) fn job_added(conn: &Connection, id: BatchId) -> QResult<()> {
    let n = conn
        .prepare_cached(
            "UPDATE batches SET total = total + 1, pending = pending + 1 \
             WHERE id = ?1 AND state = 'open'",
        )?
        .execute([id.as_bytes().as_slice()])?;
    if n == 0 {
        let batch = get(conn, id)?;
        return Err(not_open(id, batch.state));
    }
    Ok(())
}

fn counter(state: JobState) -> Option<&'static str> {
    match state {
        JobState::Succeeded => Some("succeeded"),
        JobState::Dead => Some("dead"),
        JobState::Cancelled => Some("cancelled"),
        _ => None,
    }
}

/// A job of the batch ended in `state`: counted, and the batch completes if it was the
/// last one of a closed batch. A completed batch counts nothing more.
pub(crate) fn job_ended(
    conn: &Connection,
    now: Millis,
    id: BatchId,
    state: JobState,
) -> QResult<()> {
    let Some(col) = counter(state) else {
        return Ok(());
    };
    let row: Option<(String, i64)> = conn
        .prepare_cached(&format!(
            "UPDATE batches SET {col} = {col} + 1, pending = MAX(pending - 1, 0) \
             WHERE id = ?1 AND state != 'completed' RETURNING state, pending"
        ))?
        .query_row([id.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((bstate, pending)) = row else {
        return Ok(());
    };
    let bstate = BatchState::parse(&bstate).map_err(corrupt)?;
    let counts = BatchCounts {
        pending: pending.max(0) as u64,
        ..Default::default()
    };
    if batch::completes(bstate, &counts) {
        complete(conn, now, id)?;
    }
    Ok(())
}

/// A dead or cancelled job of the batch was made ready again (retry, dead requeue): its
/// end is uncounted, unless the batch already completed (it stays completed).
pub(crate) fn job_revived(conn: &Connection, id: BatchId, was: JobState) -> QResult<()> {
    let Some(col) = counter(was) else {
        return Ok(());
    };
    conn.prepare_cached(&format!(
        "UPDATE batches SET {col} = MAX({col} - 1, 0), pending = pending + 1 \
         WHERE id = ?1 AND state != 'completed'"
    ))?
    .execute([id.as_bytes().as_slice()])?;
    Ok(())
}

/// Completes a batch: its state, its `on_complete` job (with the completion context) and
/// its callback, once.
fn complete(conn: &Connection, now: Millis, id: BatchId) -> QResult<()> {
    let n = conn
        .prepare_cached(
            "UPDATE batches SET state = 'completed', completed_at = ?1 \
             WHERE id = ?2 AND state = 'closed'",
        )?
        .execute(params![now, id.as_bytes().as_slice()])?;
    if n == 0 {
        return Ok(());
    }
    let b = get(conn, id)?;
    let failed: Vec<errand_core::JobId> = conn
        .prepare_cached(
            "SELECT id FROM jobs WHERE batch_id = ?1 AND state IN ('dead', 'cancelled') \
             ORDER BY id LIMIT +?2",
        )?
        .query_map(
            params![id.as_bytes().as_slice(), batch::MAX_FAILED_IDS as i64],
            |r| r.get::<_, Vec<u8>>(0),
        )?
        .map(|r| r.map_err(Fault::from).and_then(|b| job_id(&b)))
        .collect::<QResult<_>>()?;
    let context = batch::completion_context(id, &b.counts, &failed);
    if let Some(t) = &b.on_complete {
        let job = insert_for_flow(conn, now, t.new_job(None))?;
        conn.prepare_cached("UPDATE jobs SET context = ?1 WHERE id = ?2")?
            .execute(params![context.to_string(), job.as_bytes().as_slice()])?;
        conn.prepare_cached("UPDATE batches SET on_complete_job_id = ?1 WHERE id = ?2")?
            .execute(params![job.as_bytes().as_slice(), id.as_bytes().as_slice()])?;
    }
    let done = get(conn, id)?;
    if let Some(callback) = errand_core::delivery::batch_callback(&done, now) {
        insert_deliveries(conn, now, &[callback])?;
    }
    let shown = serde_json::to_value(&done).map_err(|e| StoreError::Internal(e.to_string()))?;
    record_event(conn, now, &EventBody::batch_completed(shown, now))?;
    Ok(())
}
