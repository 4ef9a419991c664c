//! Writes the engine's maintenance services make: rescuing expired leases and timed-out
//! attempts, and making due scheduled jobs available.

use std::collections::BTreeSet;
use std::time::Duration;

use errand_core::{Job, JobId, Millis, QueueName, Rescue, Stuck};
use errand_store::{DueWork, JobPruneParams, JobRescueParams, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::fault::{Fault, QResult};
use crate::gate;
use crate::job_settle::{fail_running, queue_policy};

struct StuckRow {
    id: JobId,
    attempt: u32,
    max_attempts: u32,
    lease_expired: bool,
    timeout_ms: Option<i64>,
    /// The queue's defaults: their backoff applies to a rescue's retry too.
    defaults: Option<String>,
}

/// Returns expired leases to the queue and fails attempts past their timeout.
pub(crate) fn rescue_expired(
    conn: &Connection,
    now: Millis,
    p: &JobRescueParams,
) -> QResult<Vec<Job>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, attempt, max_attempts, lease_expires_at <= ?1, timeout_ms, \
         (SELECT defaults FROM queues WHERE name = jobs.queue) FROM jobs INDEXED BY jobs_leases \
         WHERE state = 'running' AND (lease_expires_at <= ?1 \
             OR (timeout_ms IS NOT NULL AND started_at + timeout_ms <= ?1)) \
         LIMIT +?2",
    )?;
    let mut rows = stmt.query(params![now, p.limit])?;
    let mut stuck = Vec::new();
    while let Some(row) = rows.next()? {
        let id: Vec<u8> = row.get(0)?;
        stuck.push(StuckRow {
            id: JobId::from_slice(&id).ok_or_else(|| {
                Fault::Store(StoreError::Corrupt("job id is not 16 bytes".into()))
            })?,
            attempt: row.get(1)?,
            max_attempts: row.get(2)?,
            lease_expired: row.get(3)?,
            timeout_ms: row.get(4)?,
            defaults: row.get(5)?,
        });
    }
    drop(rows);
    let mut changed = Vec::with_capacity(stuck.len());
    for s in stuck {
        let why = if s.lease_expired {
            Stuck::LeaseExpired
        } else {
            Stuck::TimedOut {
                timeout_ms: s.timeout_ms.unwrap_or_default(),
            }
        };
        let policy = queue_policy(s.defaults.as_deref(), &p.retry_policy)?;
        let r = Rescue::decide(why, s.attempt, s.max_attempts, &policy);
        changed.push(fail_running(
            conn, now, s.id, s.attempt, r.after, r.outcome, &r.message,
        )?);
    }
    Ok(changed)
}

/// How long until `work` is next due by `now` (see [`errand_store::Store::due_in`]).
pub(crate) fn due_in(conn: &Connection, now: Millis, work: DueWork) -> QResult<Option<Duration>> {
    let sql = match work {
        DueWork::Promote => {
            "SELECT run_at FROM jobs INDEXED BY jobs_scheduled WHERE state = 'scheduled' \
             ORDER BY run_at LIMIT 1"
        }
        // The soonest lease end is the first entry of the lease index; a timeout may end
        // sooner, and only running jobs with a timeout are looked at for it.
        DueWork::Rescue => {
            "SELECT min(lease, coalesce(timeout, lease)) FROM \
             (SELECT (SELECT lease_expires_at FROM jobs INDEXED BY jobs_leases \
                      WHERE state = 'running' ORDER BY lease_expires_at LIMIT 1) AS lease, \
                     (SELECT min(started_at + timeout_ms) FROM jobs INDEXED BY jobs_leases \
                      WHERE state = 'running' AND timeout_ms IS NOT NULL) AS timeout)"
        }
        // A buffered slot whose last run ended is due now, as `schedule_due` counts it; a
        // schedule that fires ahead is due `?2` before its slot. (`min` of SQL is NULL when
        // either side is, hence the COALESCEs.)
        DueWork::Fire { .. } => {
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM schedules s \
                   LEFT JOIN jobs j ON j.id = s.last_job_id \
                   WHERE s.paused = 0 AND s.buffered_slot IS NOT NULL \
                   AND (j.state IS NULL OR j.state IN ('succeeded', 'dead', 'cancelled'))) \
               THEN ?1 ELSE (SELECT min(coalesce(at_slot, before_slot), coalesce(before_slot, at_slot)) \
                   FROM (SELECT (SELECT next_fire_at FROM schedules INDEXED BY schedules_due_ahead \
                                 WHERE paused = 0 AND fires_ahead = 0 AND next_fire_at IS NOT NULL \
                                 ORDER BY next_fire_at LIMIT 1) AS at_slot, \
                                (SELECT next_fire_at FROM schedules INDEXED BY schedules_due_ahead \
                                 WHERE paused = 0 AND fires_ahead = 1 AND next_fire_at IS NOT NULL \
                                 ORDER BY next_fire_at LIMIT 1) - ?2 AS before_slot)) END"
        }
        DueWork::Deadline => {
            "SELECT deadline_at FROM jobs INDEXED BY jobs_deadline WHERE deadline_at IS NOT NULL \
             AND state IN ('available', 'scheduled', 'running') AND step_role = 'step' \
             ORDER BY deadline_at LIMIT 1"
        }
    };
    let ahead = match work {
        DueWork::Fire { ahead } => errand_store::lead_millis(ahead),
        _ => 0,
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let at: Option<Option<Millis>> = match stmt.parameter_count() {
        0 => stmt.query_row([], |r| r.get(0)).optional()?,
        1 => stmt.query_row([now], |r| r.get(0)).optional()?,
        _ => stmt.query_row([now, ahead], |r| r.get(0)).optional()?,
    };
    Ok(at
        .flatten()
        .map(|at| Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0))))
}

/// Makes due scheduled jobs available; returns the queues that gained jobs.
pub(crate) fn promote_due(conn: &Connection, now: Millis, limit: u32) -> QResult<Vec<QueueName>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE jobs SET state = 'available', updated_at = ?1 WHERE id IN \
         (SELECT id FROM jobs INDEXED BY jobs_scheduled WHERE state = 'scheduled' AND run_at <= ?1 \
          ORDER BY run_at LIMIT +?2) RETURNING queue, CASE WHEN parked = 1 THEN gate END",
    )?;
    let mut rows = stmt.query(params![now, limit])?;
    let mut queues = BTreeSet::new();
    // Parked jobs made due stay parked: their gates let them in if a place is free.
    let mut gates = BTreeSet::new();
    while let Some(row) = rows.next()? {
        let q: String = row.get(0)?;
        let g: Option<String> = row.get(1)?;
        match g {
            Some(g) => {
                gates.insert(g);
            }
            None => {
                queues.insert(q);
            }
        }
    }
    drop(rows);
    let gates: Vec<String> = gates.into_iter().collect();
    queues.extend(gate::admit_due(conn, now, &gates)?);
    queues
        .into_iter()
        .map(|q| QueueName::parse(&q).map_err(|e| Fault::Store(StoreError::Corrupt(e.to_string()))))
        .collect()
}

/// A finished job a flow still needs, whatever its age: a job of a workflow that has not
/// ended (its result feeds a later step or a compensation), and a parent whose
/// continuation still waits (its result goes into the continuation's context).
pub(crate) const FLOW_KEEPS: &str =
    "((jobs.workflow_id IS NOT NULL AND EXISTS (SELECT 1 FROM workflows w \
     WHERE w.id = jobs.workflow_id AND w.state IN ('running', 'failing', 'compensating'))) \
     OR EXISTS (SELECT 1 FROM job_deps d JOIN jobs c ON c.id = d.child_id \
     WHERE d.parent_id = jobs.id AND c.state = 'blocked'))";

/// A queue and state's finished jobs (`?1`, `?2`) that finished before `?3`, oldest first,
/// at most `?4`: a range of the `jobs_finished` index.
pub(crate) fn prune_pick_sql() -> String {
    format!(
        "SELECT id, gate FROM jobs WHERE queue = ?1 AND state = ?2 AND finished_at < ?3 \
         AND NOT {FLOW_KEEPS} ORDER BY finished_at LIMIT +?4"
    )
}

/// Deletes finished jobs past their retention, oldest first per queue and state, with
/// their attempts; at most `limit` in all. Jobs a flow still needs stay ([`FLOW_KEEPS`]).
pub(crate) fn prune(conn: &Connection, now: Millis, p: &JobPruneParams) -> QResult<u64> {
    let cutoff = now.saturating_sub(i64::try_from(p.older_than.as_millis()).unwrap_or(i64::MAX));
    let queues: Vec<String> = conn
        .prepare_cached("SELECT name FROM queues")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut pick = conn.prepare_cached(&prune_pick_sql())?;
    let mut attempts = conn.prepare_cached("DELETE FROM job_attempts WHERE job_id = ?1")?;
    let mut jobs = conn.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
    // A finished job's edges are spent: its children counted its end, and it waits for
    // nothing any more.
    let mut edges =
        conn.prepare_cached("DELETE FROM job_deps WHERE parent_id = ?1 OR child_id = ?1")?;
    let mut deleted = 0u64;
    for queue in &queues {
        for state in p.states.iter().filter(|s| s.is_final()) {
            let left = u64::from(p.limit).saturating_sub(deleted);
            if left == 0 {
                return Ok(deleted);
            }
            let ids: Vec<(Vec<u8>, Option<String>)> = pick
                .query_map(params![queue, state.as_str(), cutoff, left as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut gated = Vec::new();
            for (id, gate) in &ids {
                attempts.execute([id])?;
                jobs.execute([id])?;
                edges.execute([id])?;
                if let Some(g) = gate {
                    gated.push((id.clone(), g.clone()));
                }
            }
            // A session blocked on a pruned dead head moves on.
            gate::jobs_deleted(conn, now, &gated)?;
            deleted += ids.len() as u64;
        }
    }
    Ok(deleted)
}
