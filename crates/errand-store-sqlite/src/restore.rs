//! Importing jobs exported from another store.

use errand_core::limits::DEFAULT_IDEMPOTENCY_WINDOW_MS;
use errand_core::restore::{restored_attempt, restored_state};
use errand_core::time::to_millis;
use errand_core::Millis;
use errand_store::{RestoredJob, StoreError};
use rusqlite::{params, Connection};

use crate::fault::QResult;
use crate::job_row::json_text;
use crate::{fairness, gate, queue_row};

fn json<T: serde::Serialize>(v: &T) -> QResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()).into())
}

/// Inserts exported jobs that are not here yet; returns how many were inserted.
pub(crate) fn restore_many(conn: &Connection, now: Millis, jobs: &[RestoredJob]) -> QResult<u64> {
    let mut queue = conn.prepare_cached(
        "INSERT INTO queues (name, paused, created_at) VALUES (?1, 0, ?2) ON CONFLICT DO NOTHING",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO jobs (id, kind, queue, state, payload, priority, run_at, attempt, max_attempts, \
         timeout_ms, tags, idempotency_key, idempotency_expires_at, result, error, progress, checkpoint, worker, \
         created_at, updated_at, started_at, finished_at, schedule_name, schedule_slot, reply_to, \
         correlation_id, callback_url, gate, gate_limit, session_on_dead, fairness_key, \
         fairness_weight, rate_key, secrets) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
         ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)",
    )?;
    let mut attempt = conn.prepare_cached(
        "INSERT OR IGNORE INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome, error, \
         report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    // A job a schedule fired claims its slot in the ledger too: an export is not one
    // snapshot, so its ledger lines may miss a slot whose job it carries, and older exports
    // carry no ledger at all. Either way no backfill may run that slot again.
    let mut ledger = conn.prepare_cached(
        "INSERT OR IGNORE INTO schedule_slots (schedule, slot, job_id) VALUES (?1, ?2, ?3)",
    )?;
    let mut inserted = 0;
    for restored in jobs {
        let secrets = restored.stored_secrets().map(|v| v.to_string());
        let RestoredJob { job, attempts, .. } = restored;
        queue.execute(params![job.queue.as_str(), now])?;
        let created = to_millis(job.created_at);
        let progress = job.progress.as_ref().map(json).transpose()?;
        let n = insert.execute(params![
            job.id.as_bytes().as_slice(),
            job.kind.as_str(),
            job.queue.as_str(),
            restored_state(job.state).as_str(),
            job.payload.to_string(),
            job.priority,
            to_millis(job.run_at),
            job.attempt,
            job.max_attempts,
            job.timeout_ms.map(|t| t as i64),
            json(&job.tags)?,
            job.idempotency_key,
            job.idempotency_key
                .as_ref()
                .map(|_| created + DEFAULT_IDEMPOTENCY_WINDOW_MS),
            json_text(&job.result),
            job.error,
            progress,
            json_text(&job.checkpoint),
            job.worker,
            created,
            to_millis(job.updated_at),
            job.started_at.map(to_millis),
            job.finished_at.map(to_millis),
            job.schedule,
            job.slot.map(to_millis),
            job.reply_to.as_ref().map(|q| q.as_str()),
            job.correlation_id,
            job.callback_url,
            job.ordering.gate().map(|g| g.stored_name()),
            job.ordering.concurrency_limit,
            job.ordering.session_on_dead.map(|d| d.as_str()),
            job.ordering.fairness_key,
            job.ordering.fairness_weight,
            job.ordering.rate_key,
            secrets,
        ])?;
        if n == 0 {
            continue;
        }
        inserted += 1;
        let state = restored_state(job.state);
        if !state.is_final() {
            rejoin(
                conn,
                now,
                job.id,
                job.queue.as_str(),
                &job.ordering,
                to_millis(job.run_at),
            )?;
        }
        if let (Some(schedule), Some(slot)) = (&job.schedule, job.slot) {
            ledger.execute(params![
                schedule,
                to_millis(slot),
                job.id.as_bytes().as_slice()
            ])?;
        }
        for a in attempts {
            let a = restored_attempt(a, job);
            attempt.execute(params![
                job.id.as_bytes().as_slice(),
                a.attempt,
                a.worker,
                to_millis(a.started_at),
                a.finished_at.map(to_millis),
                a.outcome.as_str(),
                a.error,
                a.report.as_ref().map(json).transpose()?,
            ])?;
        }
    }
    Ok(inserted)
}

/// A restored unfinished job takes its fair rank and arrives at its gate like an insert,
/// in the order the export gives, except that it keeps the gate's capacity (its limit
/// only sets the capacity of a gate it creates). A parked job not due yet is stored as
/// `scheduled`, so promotion wakes its gate when it falls due.
fn rejoin(
    conn: &Connection,
    now: Millis,
    id: errand_core::JobId,
    queue: &str,
    ordering: &errand_core::ordering::JobOrdering,
    run_at: Millis,
) -> QResult<()> {
    let mut q = queue_row::read(conn, queue)?.unwrap_or_default();
    let rank = if ordering.is_plain() && !q.fair {
        None
    } else {
        fairness::rank_new(conn, queue, &mut q, ordering)?
    };
    let (seq, parked) = match ordering.gate() {
        Some(g) => {
            let (seq, parked) = gate::arrive(conn, now, &g, run_at <= now, false)?;
            (Some(seq), parked)
        }
        None => (None, false),
    };
    if rank.is_some() || seq.is_some() {
        conn.prepare_cached(
            "UPDATE jobs SET fair_rank = ?2, gate_seq = ?3, parked = ?4, \
             state = CASE WHEN ?4 AND state = 'available' AND run_at > ?5 THEN 'scheduled' \
                 ELSE state END \
             WHERE id = ?1",
        )?
        .execute(params![id.as_bytes().as_slice(), rank, seq, parked, now])?;
    }
    Ok(())
}

/// Creates a queue or sets whether it is paused.
pub(crate) fn queue_upsert(
    conn: &Connection,
    now: Millis,
    name: &str,
    paused: bool,
) -> QResult<()> {
    conn.prepare_cached(
        "INSERT INTO queues (name, paused, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
    )?
    .execute(params![name, paused, now])?;
    Ok(())
}
