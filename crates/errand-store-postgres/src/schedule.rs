//! Schedules: definitions, the state schedulers share, and firing slots exactly once.

use deadpool_postgres::GenericClient;
use errand_core::schedule_spec::{Schedule, ScheduleSpec};
use errand_core::time::{to_millis, to_timestamp};
use errand_core::{Job, JobId, JobState, Millis};
use errand_store::{ScheduleFireParams, StoreError};
use serde_json::Value;
use tokio_postgres::Row;

use crate::fault::{corrupt, Fault, QResult, RowExt};
use crate::job_write;

const COLUMNS: &str = "s.name, s.spec, s.paused, s.next_fire_at, s.last_fire_at, s.last_job_id, \
     s.buffered_slot, s.created_at, s.updated_at, j.state";

const FROM: &str = "FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id";

fn not_found(name: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("schedule {name}"),
    })
}

fn from_row(row: &Row) -> QResult<Schedule> {
    let spec: Value = row.column(1)?;
    let last_state: Option<String> = row.column(9)?;
    let at = |i: usize| -> QResult<Option<jiff::Timestamp>> {
        Ok(row.column::<Option<Millis>>(i)?.map(to_timestamp))
    };
    Ok(Schedule {
        spec: serde_json::from_value::<ScheduleSpec>(spec).map_err(corrupt)?,
        paused: row.column(2)?,
        next_fire_at: at(3)?,
        last_fire_at: at(4)?,
        last_job_id: row.column::<Option<uuid::Uuid>>(5)?.map(JobId),
        last_job_state: last_state
            .map(|s| s.parse::<JobState>())
            .transpose()
            .map_err(corrupt)?,
        buffered_slot: at(6)?,
        created_at: to_timestamp(row.column(7)?),
        updated_at: to_timestamp(row.column(8)?),
    })
}

/// One schedule.
pub(crate) async fn get(client: &impl GenericClient, name: &str) -> QResult<Schedule> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} {FROM} WHERE s.name = $1"))
        .await?;
    match client.query_opt(&stmt, &[&name]).await? {
        Some(row) => from_row(&row),
        None => Err(not_found(name)),
    }
}

/// Every schedule by name.
pub(crate) async fn list(client: &impl GenericClient) -> QResult<Vec<Schedule>> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} {FROM} ORDER BY s.name"))
        .await?;
    client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Creates or replaces a schedule's definition.
pub(crate) async fn put(
    client: &impl GenericClient,
    spec: &ScheduleSpec,
    next_fire_at: Option<Millis>,
    create_only: bool,
) -> QResult<Schedule> {
    let name = spec.name.as_str();
    let value =
        serde_json::to_value(spec).map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    let sql = if create_only {
        "INSERT INTO schedules (name, spec, next_fire_at, created_at, updated_at) \
         VALUES ($1, $2, $3, errand_now(), errand_now()) ON CONFLICT (name) DO NOTHING"
    } else {
        "INSERT INTO schedules (name, spec, next_fire_at, created_at, updated_at) \
         VALUES ($1, $2, $3, errand_now(), errand_now()) \
         ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, next_fire_at = EXCLUDED.next_fire_at, \
             buffered_slot = NULL, updated_at = EXCLUDED.updated_at"
    };
    let stmt = client.prepare_cached(sql).await?;
    if client
        .execute(&stmt, &[&name, &value, &next_fire_at])
        .await?
        == 0
    {
        return Err(Fault::Store(StoreError::AlreadyExists {
            what: format!("schedule {name}"),
        }));
    }
    get(client, name).await
}

/// Deletes a schedule.
pub(crate) async fn delete(client: &impl GenericClient, name: &str) -> QResult<()> {
    let stmt = client
        .prepare_cached("DELETE FROM schedules WHERE name = $1")
        .await?;
    if client.execute(&stmt, &[&name]).await? == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

/// Pauses or resumes a schedule.
pub(crate) async fn set_paused(
    client: &impl GenericClient,
    name: &str,
    paused: bool,
) -> QResult<Schedule> {
    let stmt = client
        .prepare_cached(
            "UPDATE schedules SET paused = $2, updated_at = errand_now() WHERE name = $1",
        )
        .await?;
    if client.execute(&stmt, &[&name, &paused]).await? == 0 {
        return Err(not_found(name));
    }
    get(client, name).await
}

/// The database clock and the schedules with work to do now.
pub(crate) async fn due(
    client: &impl GenericClient,
    limit: u32,
) -> QResult<(Millis, Vec<Schedule>)> {
    let now: Millis = client
        .query_one("SELECT errand_now()", &[])
        .await?
        .column(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} {FROM} WHERE NOT s.paused AND (s.next_fire_at <= $1 OR s.buffered_slot IS NOT NULL) \
             ORDER BY s.next_fire_at LIMIT $2"
        ))
        .await?;
    let rows = client.query(&stmt, &[&now, &i64::from(limit)]).await?;
    Ok((now, rows.iter().map(from_row).collect::<QResult<_>>()?))
}

/// One scheduler pass over one schedule, inside the caller's transaction.
pub(crate) async fn fire(client: &impl GenericClient, p: ScheduleFireParams) -> QResult<Vec<Job>> {
    let name = p.name.as_str();
    let stmt = client
        .prepare_cached("SELECT next_fire_at FROM schedules WHERE name = $1 FOR UPDATE")
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&name]).await? else {
        return Err(not_found(name));
    };
    let current: Option<Millis> = row.column(0)?;
    if current != p.expected_next_fire_at {
        return Err(Fault::Store(StoreError::WrongState(format!(
            "schedule {name} was fired by another scheduler"
        ))));
    }
    let claim = client
        .prepare_cached(
            "INSERT INTO schedule_slots (schedule, slot, job_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .await?;
    let mut fresh = Vec::with_capacity(p.jobs.len());
    for job in p.jobs {
        let Some(slot) = &job.slot else {
            return Err(Fault::Store(StoreError::Invalid(
                "a scheduled job needs its slot".into(),
            )));
        };
        if client
            .execute(&claim, &[&slot.schedule, &slot.at, &job.id.0])
            .await?
            == 1
        {
            fresh.push(job);
        }
    }
    let fired: Vec<Job> = if fresh.is_empty() {
        Vec::new()
    } else {
        job_write::insert_many(client, fresh, p.idempotency_window)
            .await?
            .into_iter()
            .map(|r| r.job)
            .collect()
    };
    let last = fired.last();
    let stmt = client
        .prepare_cached(
            "UPDATE schedules SET next_fire_at = $2, buffered_slot = $3, \
                 last_fire_at = COALESCE($4, last_fire_at), last_job_id = COALESCE($5, last_job_id), \
                 updated_at = errand_now() WHERE name = $1",
        )
        .await?;
    let last_fire: Option<Millis> = last.and_then(|j| j.slot).map(to_millis);
    let last_id: Option<uuid::Uuid> = last.map(|j| j.id.0);
    client
        .execute(
            &stmt,
            &[
                &name,
                &p.next_fire_at,
                &p.buffered_slot,
                &last_fire,
                &last_id,
            ],
        )
        .await?;
    Ok(fired)
}
