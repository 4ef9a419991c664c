//! Schedules: definitions, the state schedulers share, and firing slots exactly once.

use errand_core::schedule_spec::{Schedule, ScheduleSpec};
use errand_core::time::to_timestamp;
use errand_core::{JobId, JobState, Millis};
use errand_store::{ScheduleFireParams, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::fault::{Fault, QResult};
use crate::job_write;

const COLUMNS: &str = "s.name, s.spec, s.paused, s.next_fire_at, s.last_fire_at, s.last_job_id, \
     s.buffered_slot, s.created_at, s.updated_at, j.state";

const FROM: &str = "FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id";

fn corrupt(e: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(e.to_string()))
}

fn from_row(row: &Row<'_>) -> QResult<Schedule> {
    let spec: String = row.get(1)?;
    let last_job: Option<Vec<u8>> = row.get(5)?;
    let last_state: Option<String> = row.get(9)?;
    let at = |i: usize| -> QResult<Option<jiff::Timestamp>> {
        Ok(row.get::<_, Option<Millis>>(i)?.map(to_timestamp))
    };
    Ok(Schedule {
        spec: serde_json::from_str::<ScheduleSpec>(&spec).map_err(corrupt)?,
        paused: row.get(2)?,
        next_fire_at: at(3)?,
        last_fire_at: at(4)?,
        last_job_id: last_job.as_deref().and_then(JobId::from_slice),
        last_job_state: last_state
            .map(|s| s.parse::<JobState>())
            .transpose()
            .map_err(corrupt)?,
        buffered_slot: at(6)?,
        created_at: to_timestamp(row.get(7)?),
        updated_at: to_timestamp(row.get(8)?),
    })
}

/// One schedule.
pub(crate) fn get(conn: &Connection, name: &str) -> QResult<Schedule> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} {FROM} WHERE s.name = ?1"))?;
    let mut rows = stmt.query([name])?;
    match rows.next()? {
        Some(row) => from_row(row),
        None => Err(Fault::Store(StoreError::NotFound {
            what: format!("schedule {name}"),
        })),
    }
}

/// Every schedule by name.
pub(crate) fn list(conn: &Connection) -> QResult<Vec<Schedule>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} {FROM} ORDER BY s.name"))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Creates or replaces a schedule's definition.
pub(crate) fn put(
    conn: &Connection,
    now: Millis,
    spec: &ScheduleSpec,
    next_fire_at: Option<Millis>,
    create_only: bool,
) -> QResult<Schedule> {
    let name = spec.name.as_str();
    let exists: bool = conn
        .prepare_cached("SELECT 1 FROM schedules WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some();
    if exists && create_only {
        return Err(Fault::Store(StoreError::AlreadyExists {
            what: format!("schedule {name}"),
        }));
    }
    let text = serde_json::to_string(spec).map_err(|e| StoreError::Invalid(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO schedules (name, spec, next_fire_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, next_fire_at = excluded.next_fire_at, \
             buffered_slot = NULL, updated_at = excluded.updated_at",
    )?
    .execute(params![name, text, next_fire_at, now])?;
    get(conn, name)
}

/// Deletes a schedule.
pub(crate) fn delete(conn: &Connection, name: &str) -> QResult<()> {
    if conn
        .prepare_cached("DELETE FROM schedules WHERE name = ?1")?
        .execute([name])?
        == 0
    {
        return Err(Fault::Store(StoreError::NotFound {
            what: format!("schedule {name}"),
        }));
    }
    Ok(())
}

/// Pauses or resumes a schedule.
pub(crate) fn set_paused(
    conn: &Connection,
    now: Millis,
    name: &str,
    paused: bool,
) -> QResult<Schedule> {
    let n = conn
        .prepare_cached("UPDATE schedules SET paused = ?2, updated_at = ?3 WHERE name = ?1")?
        .execute(params![name, paused, now])?;
    if n == 0 {
        return Err(Fault::Store(StoreError::NotFound {
            what: format!("schedule {name}"),
        }));
    }
    get(conn, name)
}

/// Schedules with work to do now.
pub(crate) fn due(conn: &Connection, now: Millis, limit: u32) -> QResult<Vec<Schedule>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE s.paused = 0 AND (s.next_fire_at <= ?1 OR s.buffered_slot IS NOT NULL) \
         ORDER BY s.next_fire_at LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![now, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// One scheduler pass over one schedule, inside the writer's transaction.
pub(crate) fn fire(
    conn: &Connection,
    now: Millis,
    p: ScheduleFireParams,
) -> QResult<Vec<errand_core::Job>> {
    let name = p.name.as_str().to_string();
    let current: Option<Option<Millis>> = conn
        .prepare_cached("SELECT next_fire_at FROM schedules WHERE name = ?1")?
        .query_row([&name], |r| r.get(0))
        .optional()?;
    let Some(current) = current else {
        return Err(Fault::Store(StoreError::NotFound {
            what: format!("schedule {name}"),
        }));
    };
    if current != p.expected_next_fire_at {
        return Err(Fault::Store(StoreError::WrongState(format!(
            "schedule {name} was fired by another scheduler"
        ))));
    }
    let mut claim_slot = conn.prepare_cached(
        "INSERT INTO schedule_slots (schedule, slot, job_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    let mut fresh = Vec::with_capacity(p.jobs.len());
    for job in p.jobs {
        let Some(slot) = &job.slot else {
            return Err(Fault::Store(StoreError::Invalid(
                "a scheduled job needs its slot".into(),
            )));
        };
        if claim_slot.execute(params![
            slot.schedule,
            slot.at,
            job.id.as_bytes().as_slice()
        ])? == 1
        {
            fresh.push(job);
        }
    }
    let fired = if fresh.is_empty() {
        Vec::new()
    } else {
        let prepared = job_write::prepare(fresh)?;
        job_write::insert_many(conn, now, prepared, p.idempotency_window)?
            .into_iter()
            .map(|r| r.job)
            .collect::<Vec<_>>()
    };
    let last = fired.last();
    conn.prepare_cached(
        "UPDATE schedules SET next_fire_at = ?2, buffered_slot = ?3, \
             last_fire_at = COALESCE(?4, last_fire_at), last_job_id = COALESCE(?5, last_job_id), updated_at = ?6 \
         WHERE name = ?1",
    )?
    .execute(params![
        name,
        p.next_fire_at,
        p.buffered_slot,
        last.and_then(|j| j.slot).map(errand_core::time::to_millis),
        last.map(|j| j.id.as_bytes().to_vec()),
        now,
    ])?;
    Ok(fired)
}
