//! Recording job transitions: one event row per change, and what a job's end owes (its
//! reply message and its callback), written inside the writer's transaction of the change so
//! none of them is ever lost or recorded for a change that did not happen.

use errand_core::{delivery::callback_for, reply::reply_for, EventBody, EventType, Job, Millis};
use errand_store::StoreError;
use rusqlite::{params, Connection};

use crate::delivery_record::insert_deliveries;
use crate::fault::QResult;
use crate::{flow_end, job_write};

/// Appends one event to the log.
pub(crate) fn record_event(conn: &Connection, now: Millis, body: &EventBody) -> QResult<()> {
    let data = serde_json::to_string(body).map_err(|e| StoreError::Internal(e.to_string()))?;
    conn.prepare_cached("INSERT INTO events (at, type, data) VALUES (?1, ?2, ?3)")?
        .execute(params![now, body.event_type.as_str(), data])?;
    Ok(())
}

/// Records that `job` (as it is after the change) went through `ty`. A change that leaves
/// the job final (succeeded, dead, cancelled) also leaves its reply message in `reply_to`
/// (a normal insert, with its own `job.enqueued`), records its callback delivery, and
/// carries the end on to the job's flow ([`flow_end::ended`]: its workflow, the jobs
/// waiting for it, its batch).
pub(crate) fn record_change(
    conn: &Connection,
    now: Millis,
    job: &Job,
    ty: EventType,
) -> QResult<()> {
    record_plain(conn, now, job, ty)?;
    if job.state.is_final() {
        flow_end::ended(conn, now, job)?;
    }
    Ok(())
}

/// [`record_change`] without the flow: for the ends the flow hook makes itself, which it
/// carries on with its own work list.
pub(crate) fn record_plain(
    conn: &Connection,
    now: Millis,
    job: &Job,
    ty: EventType,
) -> QResult<()> {
    record_event(conn, now, &EventBody::job(job, ty, now))?;
    if !job.state.is_final() {
        return Ok(());
    }
    if let Some(reply) = reply_for(job) {
        let prepared = job_write::prepare(vec![reply])?;
        job_write::insert_many(conn, now, prepared, std::time::Duration::ZERO)?;
    }
    if let Some(callback) = callback_for(job, now) {
        insert_deliveries(conn, now, &[callback])?;
    }
    Ok(())
}

/// [`record_change`] for each change of a batch, in order.
pub(crate) fn record_changes<'a>(
    conn: &Connection,
    now: Millis,
    changes: impl IntoIterator<Item = (&'a Job, EventType)>,
) -> QResult<()> {
    for (job, ty) in changes {
        record_change(conn, now, job, ty)?;
    }
    Ok(())
}
