//! Queue reads and writes, and bulk operations on a queue's dead jobs.

use std::collections::BTreeMap;

use errand_core::{EventType, JobState, Millis, QueueInfo, QueueName, StateCounts};
use errand_store::{DeadSelection, StoreError};
use rusqlite::{named_params, params, Connection};

use crate::fault::{Fault, QResult};
use crate::job_row::{query_jobs, JOB_COLUMNS};
use crate::job_settle::REVIVE;
use crate::transition::record_changes;
use crate::{gate, queue_row};

/// Changes a queue's settings (and pauses or resumes it), creating it when missing.
pub(crate) fn update(
    conn: &Connection,
    now: Millis,
    name: &QueueName,
    patch: &errand_core::queue::QueueSettingsPatch,
) -> QResult<QueueInfo> {
    queue_row::update(conn, now, name.as_str(), patch)?;
    list(conn, now, Some(name))?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::queue_not_found(name)))
}

/// The earliest `run_at` of a queue's ready jobs without reading them all. The claim
/// index (`jobs_ready`: queue, priority DESC, fair_rank, run_at, parked jobs left out)
/// holds, within each priority, the jobs without a fair rank (every job of a queue without
/// tenants) in `run_at` order, so this hops from one priority present to the next and
/// takes the first of those. Ranked jobs (a fair queue) are ordered by rank, not `run_at`:
/// their minimum is a scan of that priority's ranked jobs, an empty range in a queue
/// without tenants. The cost of a plain queue grows with its distinct priorities, not its
/// jobs.
const OLDEST_READY: &str = "WITH RECURSIVE p(pr) AS ( \
        SELECT MAX(priority) FROM jobs INDEXED BY jobs_ready \
        WHERE queue = ?1 AND state IN ('available', 'scheduled') AND parked = 0 \
        UNION ALL \
        SELECT (SELECT MAX(priority) FROM jobs INDEXED BY jobs_ready \
                WHERE queue = ?1 AND state IN ('available', 'scheduled') AND parked = 0 \
                AND priority < p.pr) \
        FROM p WHERE p.pr IS NOT NULL) \
    SELECT MIN(MIN( \
        COALESCE((SELECT MIN(run_at) FROM jobs INDEXED BY jobs_ready \
                WHERE queue = ?1 AND state IN ('available', 'scheduled') AND parked = 0 \
                AND priority = p.pr AND fair_rank IS NULL), 9223372036854775807), \
        COALESCE((SELECT MIN(run_at) FROM jobs INDEXED BY jobs_ready \
                WHERE queue = ?1 AND state IN ('available', 'scheduled') AND parked = 0 \
                AND priority = p.pr AND fair_rank IS NOT NULL), 9223372036854775807))) \
    FROM p WHERE p.pr IS NOT NULL";

/// Reads every queue, or one, with counts per state and the age of the oldest ready job.
pub(crate) fn list(
    conn: &Connection,
    now: Millis,
    only: Option<&QueueName>,
) -> QResult<Vec<QueueInfo>> {
    let filter = only.map(|q| q.as_str().to_string());
    let mut queues: BTreeMap<String, QueueInfo> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT name, paused FROM queues WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
    )?;
    let mut rows = stmt.query([&filter])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let parsed = QueueName::parse(&name)
            .map_err(|e| Fault::Store(StoreError::Corrupt(e.to_string())))?;
        queues.insert(
            name,
            QueueInfo {
                name: parsed,
                paused: row.get(1)?,
                counts: StateCounts::default(),
                oldest_available_age_ms: None,
                waiting_claims: 0,
                settings: Default::default(),
            },
        );
    }
    drop(rows);
    for (name, q) in queues.iter_mut() {
        if let Some(row) = queue_row::read(conn, name)? {
            q.settings = row.settings;
        }
    }
    let mut counts = conn.prepare_cached(
        "SELECT queue, state, n FROM queue_counts WHERE (?1 IS NULL OR queue = ?1) AND n > 0",
    )?;
    let mut rows = counts.query([&filter])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let state: String = row.get(1)?;
        let n: i64 = row.get(2)?;
        if let (Some(q), Ok(state)) = (queues.get_mut(&name), state.parse::<JobState>()) {
            q.counts.add(state, n.max(0) as u64);
        }
    }
    drop(rows);
    let mut oldest = conn.prepare_cached(OLDEST_READY)?;
    for (name, q) in queues.iter_mut() {
        let run_at: Option<Millis> = oldest.query_row([name], |r| r.get(0))?;
        q.oldest_available_age_ms = run_at
            .filter(|&r| r <= now && r != Millis::MAX)
            .map(|r| now.saturating_sub(r).max(0) as u64);
    }
    Ok(queues.into_values().collect())
}

/// Pauses or resumes a queue.
pub(crate) fn set_paused(
    conn: &Connection,
    now: Millis,
    name: &QueueName,
    paused: bool,
) -> QResult<QueueInfo> {
    let changed = conn
        .prepare_cached("UPDATE queues SET paused = ?2 WHERE name = ?1")?
        .execute(params![name.as_str(), paused])?;
    if changed == 0 {
        return Err(Fault::Store(StoreError::queue_not_found(name)));
    }
    list(conn, now, Some(name))?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::queue_not_found(name)))
}

/// The WHERE clause of a dead selection, over `:queue` and `:ids` (a JSON array of UUIDs).
/// Dead jobs a requeue may revive: not workflow jobs, which are run again with their
/// workflow (`POST /v1/workflows/{id}/retry`).
const REQUEUABLE: &str = "step_role IS NULL";

const DEAD_SELECTION: &str = "state = 'dead' AND (:queue IS NULL OR queue = :queue) \
    AND (:ids IS NULL OR id IN (SELECT unhex(replace(value, '-', '')) FROM json_each(:ids)))";

fn selection_args(sel: &DeadSelection) -> (Option<String>, Option<String>) {
    let ids_json = |ids: &[errand_core::JobId]| {
        serde_json::Value::from(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()).to_string()
    };
    match sel {
        DeadSelection::All => (None, None),
        DeadSelection::Queue(q) => (Some(q.as_str().to_string()), None),
        DeadSelection::Ids { ids, queue } => (
            queue.as_ref().map(|q| q.as_str().to_string()),
            Some(ids_json(ids)),
        ),
    }
}

/// Makes selected dead jobs available again.
pub(crate) fn dead_requeue(conn: &Connection, now: Millis, sel: &DeadSelection) -> QResult<u64> {
    let (queue, ids) = selection_args(sel);
    // Revived in line order, so a session's or key's jobs come back in enqueue order.
    let order: Vec<Vec<u8>> = conn
        .prepare_cached(&format!(
            "SELECT id FROM jobs WHERE {DEAD_SELECTION} AND {REQUEUABLE} ORDER BY gate, gate_seq, id"
        ))?
        .query_map(named_params! {":queue": queue, ":ids": ids}, |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET {REVIVE} WHERE {DEAD_SELECTION} AND {REQUEUABLE} RETURNING {JOB_COLUMNS}"
    ))?;
    let mut jobs = query_jobs(
        &mut stmt,
        named_params! {":now": now, ":queue": queue, ":ids": ids},
    )?;
    drop(stmt);
    jobs.sort_by_key(|j| {
        order
            .iter()
            .position(|id| id.as_slice() == j.id.as_bytes().as_slice())
    });
    for job in &mut jobs {
        gate::revived(conn, now, job)?;
        if let Some(b) = job.flow.batch_id {
            crate::batch::job_revived(conn, b, errand_core::JobState::Dead)?;
        }
    }
    record_changes(conn, now, jobs.iter().map(|j| (j, EventType::JobEnqueued)))?;
    Ok(jobs.len() as u64)
}

/// Deletes selected dead jobs and their attempts.
pub(crate) fn dead_purge(conn: &Connection, now: Millis, sel: &DeadSelection) -> QResult<u64> {
    let (queue, ids) = selection_args(sel);
    let gated: Vec<(Vec<u8>, String)> = conn
        .prepare_cached(&format!(
            "SELECT id, gate FROM jobs WHERE {DEAD_SELECTION} AND gate IS NOT NULL"
        ))?
        .query_map(named_params! {":queue": queue, ":ids": ids}, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    conn.prepare_cached(&format!(
        "DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE {DEAD_SELECTION})"
    ))?
    .execute(named_params! {":queue": queue, ":ids": ids})?;
    let n = conn
        .prepare_cached(&format!("DELETE FROM jobs WHERE {DEAD_SELECTION}"))?
        .execute(named_params! {":queue": queue, ":ids": ids})?;
    gate::jobs_deleted(conn, now, &gated)?;
    Ok(n as u64)
}
