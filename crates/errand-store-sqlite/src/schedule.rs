//! Schedules: definitions, the state schedulers share, and firing slots exactly once.

use errand_core::schedule_spec::Schedule;
use errand_core::time::to_millis;
use errand_core::{EventBody, Job, JobId, JobState, Millis};
use errand_store::{
    FireRecord, ScheduleCas, ScheduleChange, ScheduleFireOutcome, ScheduleFireParams, SchedulePut,
    SchedulePutParams, ScheduleRow, ScheduleSlotListParams, ScheduleSlotPruneParams,
    ScheduleSlotRecord, StoreError, TakeBack,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::fault::{Fault, QResult};
use crate::transition::record_event;
use crate::{job_settle, job_write};

const COLUMNS: &str = "s.spec, s.paused, s.next_fire_at, s.last_fire_at, s.last_job_id, \
     s.buffered_slot, s.created_at, s.updated_at, j.state";

const FROM: &str = "FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id";

fn corrupt(e: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(e.to_string()))
}

fn not_found(name: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("schedule {name}"),
    })
}

fn job_id(bytes: Option<Vec<u8>>) -> QResult<Option<JobId>> {
    bytes
        .map(|b| JobId::from_slice(&b).ok_or_else(|| corrupt("a job id is not 16 bytes")))
        .transpose()
}

fn from_row(row: &Row<'_>) -> QResult<Schedule> {
    let spec: String = row.get(0)?;
    Ok(ScheduleRow {
        spec: serde_json::from_str(&spec).map_err(corrupt)?,
        paused: row.get(1)?,
        next_fire_at: row.get(2)?,
        last_fire_at: row.get(3)?,
        last_job_id: job_id(row.get(4)?)?,
        buffered_slot: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        last_job_state: row.get(8)?,
    }
    .into_schedule()?)
}

fn query(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> QResult<Vec<Schedule>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// One schedule.
pub(crate) fn get(conn: &Connection, name: &str) -> QResult<Schedule> {
    query(
        conn,
        &format!("SELECT {COLUMNS} {FROM} WHERE s.name = ?1"),
        [name],
    )?
    .pop()
    .ok_or_else(|| not_found(name))
}

/// Every schedule by name.
pub(crate) fn list(conn: &Connection) -> QResult<Vec<Schedule>> {
    query(
        conn,
        &format!("SELECT {COLUMNS} {FROM} ORDER BY s.name"),
        [],
    )
}

/// Creates or replaces a schedule's definition.
pub(crate) fn put(
    conn: &Connection,
    now: Millis,
    p: &SchedulePutParams,
) -> QResult<ScheduleChange> {
    let name = p.spec.name.as_str();
    let exists: bool = conn
        .prepare_cached("SELECT 1 FROM schedules WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some();
    if exists && p.mode == SchedulePut::Create {
        return Err(Fault::Store(StoreError::AlreadyExists {
            what: format!("schedule {name}"),
        }));
    }
    let text = serde_json::to_string(&p.spec).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let taken_back = if exists {
        take_back_ahead(conn, now, name)?
    } else {
        Vec::new()
    };
    conn.prepare_cached(
        "INSERT INTO schedules (name, spec, next_fire_at, fires_ahead, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, next_fire_at = excluded.next_fire_at, \
             fires_ahead = excluded.fires_ahead, buffered_slot = NULL, updated_at = excluded.updated_at",
    )?
    .execute(params![name, text, p.next_fire_at, p.spec.fires_ahead(), now])?;
    Ok(ScheduleChange {
        schedule: get(conn, name)?,
        taken_back,
    })
}

/// Takes back the jobs a schedule wrote ahead for slots still to come, as if those slots
/// had not been reached: each job that has not started is cancelled and its slot freed,
/// `next_fire_at` goes back to the first slot freed, and the last fire to the newest slot
/// that stays. A definition that changes, a pause or a delete then holds from now on.
/// Returns the jobs cancelled.
fn take_back_ahead(conn: &Connection, now: Millis, name: &str) -> QResult<Vec<Job>> {
    let ahead: Vec<(Millis, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT slot, job_id FROM schedule_slots WHERE schedule = ?1 AND slot > ?2 ORDER BY slot",
        )?
        .query_map(params![name, now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut freed = Vec::new();
    let mut cancelled = Vec::new();
    for (slot, id) in ahead {
        let id = JobId::from_slice(&id).ok_or_else(|| corrupt("a job id is not 16 bytes"))?;
        let state: Option<String> = conn
            .prepare_cached("SELECT state FROM jobs WHERE id = ?1")?
            .query_row([id.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        let state = state
            .map(|s| s.parse::<JobState>())
            .transpose()
            .map_err(corrupt)?;
        match TakeBack::of(state) {
            TakeBack::Keep => continue,
            TakeBack::Cancel => {
                let mut job = job_settle::cancel(conn, now, id)?;
                job.slot = None;
                // No longer the slot's job: a retry of it would be a second run of the slot.
                conn.prepare_cached("UPDATE jobs SET schedule_slot = NULL WHERE id = ?1")?
                    .execute([id.as_bytes().as_slice()])?;
                cancelled.push(job);
            }
            TakeBack::Free => {}
        }
        conn.prepare_cached("DELETE FROM schedule_slots WHERE schedule = ?1 AND slot = ?2")?
            .execute(params![name, slot])?;
        freed.push((slot, id));
    }
    let Some(&(first, _)) = freed.first() else {
        return Ok(cancelled);
    };
    let last = read_cas(conn, name)?.and_then(|c| c.last_job_id);
    let last_freed = last.is_some_and(|l| freed.iter().any(|(_, id)| *id == l));
    // Every SET reads the row as it was, so `last_fire_at` in the CASEs is the old one.
    conn.prepare_cached(
        "UPDATE schedules SET next_fire_at = MIN(COALESCE(next_fire_at, ?2), ?2), \
             last_fire_at = CASE WHEN last_fire_at >= ?2 \
                 THEN (SELECT MAX(slot) FROM schedule_slots WHERE schedule = ?1) \
                 ELSE last_fire_at END, \
             last_job_id = CASE WHEN ?3 THEN (SELECT job_id FROM schedule_slots \
                 WHERE schedule = ?1 ORDER BY slot DESC LIMIT 1) ELSE last_job_id END \
         WHERE name = ?1",
    )?
    .execute(params![name, first, last_freed])?;
    Ok(cancelled)
}

/// Deletes a schedule, taking back the jobs it wrote ahead, which it returns.
pub(crate) fn delete(conn: &Connection, now: Millis, name: &str) -> QResult<Vec<Job>> {
    let taken_back = take_back_ahead(conn, now, name)?;
    if conn
        .prepare_cached("DELETE FROM schedules WHERE name = ?1")?
        .execute([name])?
        == 0
    {
        return Err(not_found(name));
    }
    Ok(taken_back)
}

/// Pauses (taking back the jobs it wrote ahead, which it returns) or resumes a schedule.
pub(crate) fn set_paused(
    conn: &Connection,
    now: Millis,
    name: &str,
    paused: bool,
) -> QResult<ScheduleChange> {
    let taken_back = if paused {
        take_back_ahead(conn, now, name)?
    } else {
        Vec::new()
    };
    let n = conn
        .prepare_cached("UPDATE schedules SET paused = ?2, updated_at = ?3 WHERE name = ?1")?
        .execute(params![name, paused, now])?;
    if n == 0 {
        return Err(not_found(name));
    }
    Ok(ScheduleChange {
        schedule: get(conn, name)?,
        taken_back,
    })
}

/// Schedules with work to do now: a slot due, or a buffered slot whose last job ended.
pub(crate) fn due(
    conn: &Connection,
    now: Millis,
    ahead: Millis,
    limit: u32,
) -> QResult<Vec<Schedule>> {
    query(
        conn,
        &format!(
            "SELECT {COLUMNS} {FROM} WHERE s.paused = 0 \
                 AND ((s.next_fire_at <= ?1 + ?3 AND (s.next_fire_at <= ?1 OR s.fires_ahead)) \
                 OR (s.buffered_slot IS NOT NULL \
                     AND (j.state IS NULL OR j.state IN ('succeeded', 'dead', 'cancelled')))) \
             ORDER BY s.next_fire_at LIMIT +?2"
        ),
        params![now, limit, ahead],
    )
}

fn read_cas(conn: &Connection, name: &str) -> QResult<Option<ScheduleCas>> {
    type CasRow = (Option<Millis>, Option<Vec<u8>>, bool, Millis);
    let row: Option<CasRow> = conn
        .prepare_cached(
            "SELECT next_fire_at, last_job_id, paused, updated_at FROM schedules WHERE name = ?1",
        )?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(|(next_fire_at, last, paused, updated_at)| {
        Ok(ScheduleCas {
            next_fire_at,
            last_job_id: job_id(last)?,
            paused,
            updated_at,
        })
    })
    .transpose()
}

/// Cancels `id` unless it already ended or is gone: `replace` only stops a run still going.
fn cancel_if_active(conn: &Connection, now: Millis, id: JobId) -> QResult<Option<Job>> {
    match job_settle::cancel(conn, now, id) {
        Ok(job) => Ok(Some(job)),
        Err(Fault::Store(StoreError::WrongState(_) | StoreError::NotFound { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Claims each job's slot; returns the jobs to insert: those whose slot was free, and those
/// without a slot (manual runs).
fn claim_slots(
    conn: &Connection,
    jobs: Vec<errand_core::NewJob>,
) -> QResult<Vec<errand_core::NewJob>> {
    let mut claim = conn.prepare_cached(
        "INSERT INTO schedule_slots (schedule, slot, job_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    let mut fresh = Vec::with_capacity(jobs.len());
    for job in jobs {
        let free = match &job.slot {
            Some(slot) => {
                claim.execute(params![
                    slot.schedule,
                    slot.at,
                    job.id.as_bytes().as_slice()
                ])? == 1
            }
            None => true,
        };
        if free {
            fresh.push(job);
        }
    }
    Ok(fresh)
}

/// One decision about one schedule, inside the writer's transaction.
fn fire_one(conn: &Connection, now: Millis, p: ScheduleFireParams) -> QResult<ScheduleFireOutcome> {
    let name = p.name.as_str().to_string();
    if !p.holds(read_cas(conn, &name)?, now) {
        return Ok(ScheduleFireOutcome::Moved);
    }
    let cancelled = match p.cancel {
        Some(id) => cancel_if_active(conn, now, id)?.map(Box::new),
        None => None,
    };
    let fresh = claim_slots(conn, p.jobs)?;
    let jobs: Vec<Job> = if fresh.is_empty() {
        Vec::new()
    } else {
        let prepared = job_write::prepare(fresh)?;
        let mut jobs = Vec::new();
        for r in job_write::insert_many(conn, now, prepared, p.idempotency_window)? {
            if let (true, Some(schedule), Some(slot)) = (r.inserted, &r.job.schedule, r.job.slot) {
                let fired = EventBody::schedule_fired(schedule, to_millis(slot), r.job.id, now);
                record_event(conn, now, &fired)?;
            }
            jobs.push(r.job);
        }
        jobs
    };
    let record = FireRecord::of(&jobs);
    conn.prepare_cached(
        "UPDATE schedules SET next_fire_at = ?2, buffered_slot = ?3, \
             last_job_id = CASE WHEN ?4 IS NULL OR last_fire_at IS NULL OR ?4 >= last_fire_at \
                 THEN COALESCE(?5, last_job_id) ELSE last_job_id END, \
             last_fire_at = CASE WHEN ?4 IS NOT NULL AND (last_fire_at IS NULL OR ?4 > last_fire_at) \
                 THEN ?4 ELSE last_fire_at END, updated_at = ?6 \
         WHERE name = ?1",
    )?
    .execute(params![
        name,
        p.next_fire_at,
        p.buffered_slot,
        record.last_fire_at,
        record.last_job_id.map(|id| id.as_bytes().to_vec()),
        now,
    ])?;
    Ok(ScheduleFireOutcome::Fired { jobs, cancelled })
}

/// Many decisions, inside one writer transaction (one fsync for all of them).
pub(crate) fn fire_many(
    conn: &Connection,
    now: Millis,
    params: Vec<ScheduleFireParams>,
) -> QResult<Vec<ScheduleFireOutcome>> {
    params.into_iter().map(|p| fire_one(conn, now, p)).collect()
}

/// A page of one schedule's slot ledger.
pub(crate) fn slot_list(
    conn: &Connection,
    p: &ScheduleSlotListParams,
) -> QResult<Vec<ScheduleSlotRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT slot, job_id FROM schedule_slots WHERE schedule = ?1 AND slot > ?2 ORDER BY slot LIMIT +?3",
    )?;
    let mut rows = stmt.query(params![
        p.schedule.as_str(),
        p.after.unwrap_or(i64::MIN),
        p.limit
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let id: Vec<u8> = row.get(1)?;
        out.push(ScheduleSlotRecord {
            schedule: p.schedule.clone(),
            slot: row.get(0)?,
            job_id: JobId::from_slice(&id).ok_or_else(|| corrupt("a job id is not 16 bytes"))?,
        });
    }
    Ok(out)
}

/// Inserts exported ledger rows, skipping recorded slots.
pub(crate) fn slot_restore_many(conn: &Connection, slots: &[ScheduleSlotRecord]) -> QResult<u64> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO schedule_slots (schedule, slot, job_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    let mut n = 0;
    for s in slots {
        n += stmt.execute(params![
            s.schedule.as_str(),
            s.slot,
            s.job_id.as_bytes().as_slice()
        ])? as u64;
    }
    Ok(n)
}

/// Deletes the oldest ledger rows older than the cutoff.
pub(crate) fn slot_prune(
    conn: &Connection,
    now: Millis,
    p: &ScheduleSlotPruneParams,
) -> QResult<u64> {
    let cutoff = now.saturating_sub(i64::try_from(p.older_than.as_millis()).unwrap_or(i64::MAX));
    let n = conn
        .prepare_cached(
            "DELETE FROM schedule_slots WHERE (schedule, slot) IN \
             (SELECT schedule, slot FROM schedule_slots WHERE slot < ?1 ORDER BY slot LIMIT +?2)",
        )?
        .execute(params![cutoff, p.limit])?;
    Ok(n as u64)
}
