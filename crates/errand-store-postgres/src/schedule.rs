//! Schedules: definitions, the state schedulers share, and firing slots exactly once.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use errand_core::schedule_spec::Schedule;
use errand_core::time::to_millis;
use errand_core::{EventBody, EventType, Job, JobId, Millis, NewJob};
use errand_store::{
    FireRecord, ScheduleCas, ScheduleChange, ScheduleFireOutcome, ScheduleFireParams, SchedulePut,
    SchedulePutParams, ScheduleRow, ScheduleSlotListParams, ScheduleSlotPruneParams,
    ScheduleSlotRecord, StoreError, TakeBack,
};
use serde_json::Value;
use tokio_postgres::Row;

use crate::fault::{Fault, QResult, RowExt};
use crate::job_row::millis;
use crate::transition::EventRows;
use crate::{job_settle, job_write};

const COLUMNS: &str = "s.spec, s.paused, s.next_fire_at, s.last_fire_at, s.last_job_id, \
     s.buffered_slot, s.created_at, s.updated_at, j.state";

const FROM: &str = "FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id";

fn not_found(name: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("schedule {name}"),
    })
}

fn from_row(row: &Row) -> QResult<Schedule> {
    Ok(ScheduleRow {
        spec: row.column::<Value>(0)?,
        paused: row.column(1)?,
        next_fire_at: row.column(2)?,
        last_fire_at: row.column(3)?,
        last_job_id: row.column::<Option<uuid::Uuid>>(4)?.map(JobId),
        buffered_slot: row.column(5)?,
        created_at: row.column(6)?,
        updated_at: row.column(7)?,
        last_job_state: row.column(8)?,
    }
    .into_schedule()?)
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

/// Creates or replaces a schedule's definition (in the caller's transaction, with the
/// jobs of slots it wrote ahead taken back, which it returns).
pub(crate) async fn put(
    client: &impl GenericClient,
    p: &SchedulePutParams,
) -> QResult<ScheduleChange> {
    let name = p.spec.name.as_str();
    let value = serde_json::to_value(&p.spec)
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    let taken_back = match p.mode {
        SchedulePut::Create => Vec::new(),
        SchedulePut::Replace => take_back_ahead(client, name).await?,
    };
    let sql = match p.mode {
        SchedulePut::Create => {
            "INSERT INTO schedules (name, spec, next_fire_at, fires_ahead, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, errand_now(), errand_now()) ON CONFLICT (name) DO NOTHING"
        }
        SchedulePut::Replace => {
            "INSERT INTO schedules (name, spec, next_fire_at, fires_ahead, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, errand_now(), errand_now()) \
             ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, next_fire_at = EXCLUDED.next_fire_at, \
                 fires_ahead = EXCLUDED.fires_ahead, buffered_slot = NULL, updated_at = EXCLUDED.updated_at"
        }
    };
    let stmt = client.prepare_cached(sql).await?;
    if client
        .execute(
            &stmt,
            &[&name, &value, &p.next_fire_at, &p.spec.fires_ahead()],
        )
        .await?
        == 0
    {
        return Err(Fault::Store(StoreError::AlreadyExists {
            what: format!("schedule {name}"),
        }));
    }
    Ok(ScheduleChange {
        schedule: get(client, name).await?,
        taken_back,
    })
}

/// Takes back the jobs a schedule wrote ahead for slots still to come, as if those slots
/// had not been reached: each job that has not started is cancelled and its slot freed,
/// `next_fire_at` goes back to the first slot freed, and the last fire to the newest slot
/// that stays. Locks the schedule's row first, as a fire does. Returns the jobs cancelled.
async fn take_back_ahead(client: &impl GenericClient, name: &str) -> QResult<Vec<Job>> {
    let lock = client
        .prepare_cached("SELECT last_job_id FROM schedules WHERE name = $1 FOR UPDATE")
        .await?;
    let Some(row) = client.query_opt(&lock, &[&name]).await? else {
        return Ok(Vec::new());
    };
    let last: Option<JobId> = row.column::<Option<uuid::Uuid>>(0)?.map(JobId);
    // The time now, not the transaction's start: the lock above may have waited behind a
    // fire while slots came.
    let ahead = client
        .prepare_cached(
            "SELECT slot, job_id FROM schedule_slots WHERE schedule = $1 \
             AND slot > GREATEST(errand_now(), (extract(epoch FROM clock_timestamp()) * 1000)::bigint) \
             ORDER BY slot",
        )
        .await?;
    let unslot = client
        .prepare_cached("UPDATE jobs SET schedule_slot = NULL WHERE id = $1")
        .await?;
    let mut freed: Vec<(Millis, JobId)> = Vec::new();
    let mut cancelled = Vec::new();
    for row in client.query(&ahead, &[&name]).await? {
        let slot: Millis = row.column(0)?;
        let id = JobId(row.column(1)?);
        // Decided under the job's lock (taken in a cancel's order): a claim may have taken
        // it since.
        let locked = job_settle::lock_for_cancel(client, id).await?;
        let take_back = TakeBack::of(locked.as_ref().map(job_settle::LockedForCancel::state));
        match (take_back, locked) {
            (TakeBack::Keep, _) => continue,
            (TakeBack::Cancel, Some(locked)) => {
                let mut job = job_settle::cancel_locked(client, locked).await?;
                // No longer the slot's job: a retry of it would be a second run of the slot.
                client.execute(&unslot, &[&id.0]).await?;
                job.slot = None;
                cancelled.push(job);
            }
            // Gone (a job to cancel is one that exists).
            (TakeBack::Free | TakeBack::Cancel, _) => {}
        }
        freed.push((slot, id));
    }
    let Some(&(first, _)) = freed.first() else {
        return Ok(cancelled);
    };
    let slots: Vec<Millis> = freed.iter().map(|(slot, _)| *slot).collect();
    let free = client
        .prepare_cached("DELETE FROM schedule_slots WHERE schedule = $1 AND slot = ANY($2)")
        .await?;
    client.execute(&free, &[&name, &slots]).await?;
    let last_freed = last.is_some_and(|l| freed.iter().any(|(_, id)| *id == l));
    // Every SET reads the row as it was, so `last_fire_at` in the CASEs is the old one.
    let rewind = client
        .prepare_cached(
            "UPDATE schedules SET next_fire_at = LEAST(next_fire_at, $2), \
                 last_fire_at = CASE WHEN last_fire_at >= $2 \
                     THEN (SELECT MAX(slot) FROM schedule_slots WHERE schedule = $1) \
                     ELSE last_fire_at END, \
                 last_job_id = CASE WHEN $3 THEN (SELECT job_id FROM schedule_slots \
                     WHERE schedule = $1 ORDER BY slot DESC LIMIT 1) ELSE last_job_id END \
             WHERE name = $1",
        )
        .await?;
    client
        .execute(&rewind, &[&name, &first, &last_freed])
        .await?;
    Ok(cancelled)
}

/// Deletes a schedule (in the caller's transaction), taking back the jobs it wrote ahead,
/// which it returns.
pub(crate) async fn delete(client: &impl GenericClient, name: &str) -> QResult<Vec<Job>> {
    let taken_back = take_back_ahead(client, name).await?;
    let stmt = client
        .prepare_cached("DELETE FROM schedules WHERE name = $1")
        .await?;
    if client.execute(&stmt, &[&name]).await? == 0 {
        return Err(not_found(name));
    }
    Ok(taken_back)
}

/// Pauses (taking back the jobs it wrote ahead, which it returns) or resumes a schedule, in
/// the caller's transaction.
pub(crate) async fn set_paused(
    client: &impl GenericClient,
    name: &str,
    paused: bool,
) -> QResult<ScheduleChange> {
    let taken_back = if paused {
        take_back_ahead(client, name).await?
    } else {
        Vec::new()
    };
    let stmt = client
        .prepare_cached(
            "UPDATE schedules SET paused = $2, updated_at = errand_now() WHERE name = $1",
        )
        .await?;
    if client.execute(&stmt, &[&name, &paused]).await? == 0 {
        return Err(not_found(name));
    }
    Ok(ScheduleChange {
        schedule: get(client, name).await?,
        taken_back,
    })
}

/// The database clock in milliseconds.
pub(crate) async fn clock_now(client: &impl GenericClient) -> QResult<Millis> {
    let stmt = client.prepare_cached("SELECT errand_now()").await?;
    client.query_one(&stmt, &[]).await?.column(0)
}

/// The database clock and the schedules with work to do now: a slot due (within `ahead`
/// for one that fires ahead), or a buffered slot whose last job ended.
pub(crate) async fn due(
    client: &impl GenericClient,
    limit: u32,
    ahead: Millis,
) -> QResult<(Millis, Vec<Schedule>)> {
    let now = clock_now(client).await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} {FROM} WHERE NOT s.paused \
                 AND ((s.next_fire_at <= $1::bigint + $3::bigint AND (s.next_fire_at <= $1 OR s.fires_ahead)) \
                 OR (s.buffered_slot IS NOT NULL \
                     AND (j.state IS NULL OR j.state IN ('succeeded', 'dead', 'cancelled')))) \
             ORDER BY s.next_fire_at LIMIT $2"
        ))
        .await?;
    let rows = client
        .query(&stmt, &[&now, &i64::from(limit), &ahead])
        .await?;
    Ok((now, rows.iter().map(from_row).collect::<QResult<_>>()?))
}

/// Locks the schedules of a batch in name order (so two nodes' batches cannot deadlock)
/// and reads what their compare-and-set needs.
async fn lock_cas(
    client: &impl GenericClient,
    names: &[&str],
) -> QResult<HashMap<String, ScheduleCas>> {
    let stmt = client
        .prepare_cached(
            "SELECT name, next_fire_at, last_job_id, paused, updated_at FROM schedules \
             WHERE name = ANY($1) ORDER BY name FOR UPDATE",
        )
        .await?;
    let mut out = HashMap::with_capacity(names.len());
    for row in client.query(&stmt, &[&names]).await? {
        out.insert(
            row.column::<String>(0)?,
            ScheduleCas {
                next_fire_at: row.column(1)?,
                last_job_id: row.column::<Option<uuid::Uuid>>(2)?.map(JobId),
                paused: row.column(3)?,
                updated_at: row.column(4)?,
            },
        );
    }
    Ok(out)
}

/// Cancels `id` unless it already ended or is gone: `replace` only stops a run still going.
async fn cancel_if_active(client: &impl GenericClient, id: JobId) -> QResult<Option<Job>> {
    match job_settle::cancel(client, id).await {
        Ok(job) => Ok(Some(job)),
        Err(Fault::Store(StoreError::WrongState(_) | StoreError::NotFound { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Claims the slots of a batch with one statement; returns the `(schedule, slot)` pairs
/// that were free.
async fn claim_slots(
    client: &impl GenericClient,
    jobs: &[&NewJob],
) -> QResult<HashSet<(String, Millis)>> {
    let (mut names, mut slots, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for job in jobs {
        if let Some(slot) = &job.slot {
            names.push(slot.schedule.as_str());
            slots.push(slot.at);
            ids.push(job.id.0);
        }
    }
    if names.is_empty() {
        return Ok(HashSet::new());
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO schedule_slots (schedule, slot, job_id) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::uuid[]) \
             ON CONFLICT DO NOTHING RETURNING schedule, slot",
        )
        .await?;
    client
        .query(&stmt, &[&names, &slots, &ids])
        .await?
        .iter()
        .map(|r| Ok((r.column(0)?, r.column(1)?)))
        .collect()
}

/// Records the decisions on their schedules with one statement.
async fn record(
    client: &impl GenericClient,
    applied: &[(&ScheduleFireParams, FireRecord)],
) -> QResult<()> {
    if applied.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = applied.iter().map(|(p, _)| p.name.as_str()).collect();
    let next: Vec<Option<Millis>> = applied.iter().map(|(p, _)| p.next_fire_at).collect();
    let buffered: Vec<Option<Millis>> = applied.iter().map(|(p, _)| p.buffered_slot).collect();
    let last_fire: Vec<Option<Millis>> = applied.iter().map(|(_, r)| r.last_fire_at).collect();
    let last_job: Vec<Option<uuid::Uuid>> = applied
        .iter()
        .map(|(_, r)| r.last_job_id.map(|id| id.0))
        .collect();
    let stmt = client
        .prepare_cached(
            "UPDATE schedules s SET next_fire_at = u.next, buffered_slot = u.buffered, \
                 last_job_id = CASE WHEN u.last_fire IS NULL OR s.last_fire_at IS NULL \
                     OR u.last_fire >= s.last_fire_at \
                     THEN COALESCE(u.last_job, s.last_job_id) ELSE s.last_job_id END, \
                 last_fire_at = GREATEST(u.last_fire, s.last_fire_at), updated_at = errand_now() \
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::uuid[]) \
                 AS u(name, next, buffered, last_fire, last_job) \
             WHERE s.name = u.name",
        )
        .await?;
    client
        .execute(&stmt, &[&names, &next, &buffered, &last_fire, &last_job])
        .await?;
    Ok(())
}

/// Many decisions in the caller's transaction, with a fixed number of statements for the
/// whole batch (lock and read, claim slots, insert jobs, record) plus one per cancel.
pub(crate) async fn fire_many(
    client: &impl GenericClient,
    params: Vec<ScheduleFireParams>,
) -> QResult<Vec<ScheduleFireOutcome>> {
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let current = lock_cas(client, &names).await?;
    let now = clock_now(client).await?;
    let holds: Vec<bool> = params
        .iter()
        .map(|p| p.holds(current.get(p.name.as_str()).copied(), now))
        .collect();
    let mut cancelled: Vec<Option<Box<Job>>> = Vec::with_capacity(params.len());
    for (p, ok) in params.iter().zip(&holds) {
        cancelled.push(match (ok, p.cancel) {
            (true, Some(id)) => cancel_if_active(client, id).await?.map(Box::new),
            _ => None,
        });
    }
    let candidates: Vec<&NewJob> = params
        .iter()
        .zip(&holds)
        .filter(|(_, ok)| **ok)
        .flat_map(|(p, _)| p.jobs.iter())
        .collect();
    let free = claim_slots(client, &candidates).await?;
    let is_fresh = |job: &NewJob| match &job.slot {
        Some(slot) => free.contains(&(slot.schedule.clone(), slot.at)),
        None => true,
    };
    let fresh: Vec<NewJob> = candidates
        .into_iter()
        .filter(|j| is_fresh(j))
        .cloned()
        .collect();
    let window = params
        .first()
        .map(|p| p.idempotency_window)
        .unwrap_or_default();
    let mut inserted: HashMap<JobId, Job> = if fresh.is_empty() {
        HashMap::new()
    } else {
        // Each job's `job.enqueued`, then the slot's `schedule.fired`, in one statement.
        let mut events = EventRows::default();
        let mut inserted = HashMap::new();
        for r in job_write::insert_jobs(client, fresh, window).await? {
            if r.inserted {
                events.push_job(&r.job, EventType::JobEnqueued)?;
                if let (Some(schedule), Some(slot)) = (&r.job.schedule, r.job.slot) {
                    events.push(&EventBody::schedule_fired(
                        schedule,
                        to_millis(slot),
                        r.job.id,
                        to_millis(r.job.updated_at),
                    ))?;
                }
            }
            inserted.insert(r.job.id, r.job);
        }
        events.append(client).await?;
        inserted
    };
    let mut outcomes = Vec::with_capacity(params.len());
    let mut records = Vec::new();
    for ((p, ok), cancelled) in params.iter().zip(holds).zip(cancelled) {
        if !ok {
            outcomes.push(ScheduleFireOutcome::Moved);
            continue;
        }
        let jobs: Vec<Job> = p
            .jobs
            .iter()
            .filter_map(|j| inserted.remove(&j.id))
            .collect();
        records.push((p, FireRecord::of(&jobs)));
        outcomes.push(ScheduleFireOutcome::Fired { jobs, cancelled });
    }
    record(client, &records).await?;
    Ok(outcomes)
}

/// A page of one schedule's slot ledger.
pub(crate) async fn slot_list(
    client: &impl GenericClient,
    p: &ScheduleSlotListParams,
) -> QResult<Vec<ScheduleSlotRecord>> {
    let stmt = client
        .prepare_cached(
            "SELECT slot, job_id FROM schedule_slots WHERE schedule = $1 AND slot > $2 \
             ORDER BY slot LIMIT $3",
        )
        .await?;
    let after = p.after.unwrap_or(i64::MIN);
    client
        .query(&stmt, &[&p.schedule.as_str(), &after, &i64::from(p.limit)])
        .await?
        .iter()
        .map(|r| {
            Ok(ScheduleSlotRecord {
                schedule: p.schedule.clone(),
                slot: r.column(0)?,
                job_id: JobId(r.column(1)?),
            })
        })
        .collect()
}

/// Inserts exported ledger rows, skipping recorded slots.
pub(crate) async fn slot_restore_many(
    client: &impl GenericClient,
    slots: &[ScheduleSlotRecord],
) -> QResult<u64> {
    let names: Vec<&str> = slots.iter().map(|s| s.schedule.as_str()).collect();
    let at: Vec<Millis> = slots.iter().map(|s| s.slot).collect();
    let ids: Vec<uuid::Uuid> = slots.iter().map(|s| s.job_id.0).collect();
    let stmt = client
        .prepare_cached(
            "INSERT INTO schedule_slots (schedule, slot, job_id) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::uuid[]) ON CONFLICT DO NOTHING",
        )
        .await?;
    Ok(client.execute(&stmt, &[&names, &at, &ids]).await?)
}

/// Deletes the oldest ledger rows older than the cutoff.
pub(crate) async fn slot_prune(
    client: &impl GenericClient,
    p: &ScheduleSlotPruneParams,
) -> QResult<u64> {
    let stmt = client
        .prepare_cached(
            "DELETE FROM schedule_slots WHERE (schedule, slot) IN \
             (SELECT schedule, slot FROM schedule_slots WHERE slot < errand_now() - $1 \
              ORDER BY slot LIMIT $2)",
        )
        .await?;
    Ok(client
        .execute(&stmt, &[&millis(p.older_than), &i64::from(p.limit)])
        .await?)
}
