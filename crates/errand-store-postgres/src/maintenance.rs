//! Rescuing expired leases and timed-out attempts; making due scheduled jobs available.
//! Several nodes may run these at once: `SKIP LOCKED` hands each row to one of them.

use deadpool_postgres::GenericClient;
use errand_core::{Job, JobId, JobState, QueueName, Rescue, Stuck};
use errand_store::{DueWork, JobPruneParams, JobRescueParams, StoreError};
use std::collections::BTreeSet;
use std::time::Duration;

use crate::fault::{Fault, QResult, RowExt};
use crate::gate;
use crate::job_settle::{fail_running, queue_policy};
use crate::queue::DELETED;

/// Rescues stuck jobs inside the caller's transaction.
pub(crate) async fn rescue_expired(
    client: &impl GenericClient,
    p: &JobRescueParams,
) -> QResult<Vec<Job>> {
    let stmt = client
        .prepare_cached(
            "SELECT id, attempt, max_attempts, lease_expires_at <= errand_now(), timeout_ms, \
                 (SELECT defaults->'backoff' FROM queues WHERE name = jobs.queue) FROM jobs \
             WHERE state = 'running' AND (lease_expires_at <= errand_now() \
                 OR (timeout_ms IS NOT NULL AND started_at + timeout_ms <= errand_now())) \
             LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let rows = client.query(&stmt, &[&i64::from(p.limit)]).await?;
    let mut changed: Vec<Job> = Vec::with_capacity(rows.len());
    for row in rows {
        let id = JobId(row.column(0)?);
        let attempt = u32::try_from(row.column::<i32>(1)?).unwrap_or(0);
        let max_attempts = u32::try_from(row.column::<i32>(2)?).unwrap_or(0);
        let lease_expired: bool = row.column(3)?;
        let timeout_ms: Option<i64> = row.column(4)?;
        let why = if lease_expired {
            Stuck::LeaseExpired
        } else {
            Stuck::TimedOut {
                timeout_ms: timeout_ms.unwrap_or_default(),
            }
        };
        // The queue's backoff applies to a rescue's retry as to a settled failure's.
        let policy = queue_policy(row.column(5)?, &p.retry_policy);
        let r = Rescue::decide(why, attempt, max_attempts, &policy);
        changed
            .push(fail_running(client, id, attempt, r.after, r.outcome, &r.message, None).await?);
    }
    // Gates after every job, in name order.
    gate::release(client, &changed.iter().collect::<Vec<_>>(), &[]).await?;
    for j in &mut changed {
        if j.state == JobState::Scheduled && j.ordering.gate().is_some_and(|g| !g.ordered()) {
            j.parked = true;
        }
    }
    Ok(changed)
}

/// Makes due scheduled jobs available; returns the queues that gained jobs. Jobs parked in
/// a gate's line become available (still parked) and their gate admits what it has room
/// for, under the gate's lock (gate first, then its jobs).
pub(crate) async fn promote_due(
    client: &mut deadpool_postgres::Object,
    limit: u32,
) -> QResult<Vec<QueueName>> {
    let stmt = client
        .prepare_cached(
            "UPDATE jobs SET state = 'available', updated_at = errand_now() WHERE id IN \
             (SELECT id FROM jobs WHERE state = 'scheduled' AND run_at <= errand_now() AND NOT parked \
              ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING queue",
        )
        .await?;
    let rows = client.query(&stmt, &[&i64::from(limit)]).await?;
    let mut queues = BTreeSet::new();
    for row in rows {
        queues.insert(row.column::<String>(0)?);
    }
    let gates = client
        .prepare_cached(
            "SELECT DISTINCT gate FROM (SELECT gate FROM jobs WHERE state = 'scheduled' \
                 AND run_at <= errand_now() AND parked ORDER BY run_at LIMIT $1) due",
        )
        .await?;
    let mut names: Vec<String> = Vec::new();
    for row in client.query(&gates, &[&i64::from(limit)]).await? {
        if let Some(g) = row.column::<Option<String>>(0)? {
            names.push(g);
        }
    }
    names.sort();
    let due = client
        .prepare_cached(
            "UPDATE jobs SET state = 'available', updated_at = errand_now() \
             WHERE gate = $1 AND parked AND state = 'scheduled' AND run_at <= errand_now() \
             RETURNING queue",
        )
        .await?;
    let admitted = client
        .prepare_cached("SELECT DISTINCT queue FROM jobs WHERE gate = $1 AND NOT parked AND state = 'available'")
        .await?;
    for name in names {
        // Each gate in its own transaction: a gate another node holds is waited for, not
        // skipped, and no two gates are held at once.
        let tx = client.transaction().await?;
        if !gate::lock(&tx, &name).await? {
            tx.commit().await?;
            continue;
        }
        tx.query(&due, &[&name]).await?;
        let ordered = name.starts_with("session:");
        if gate::admit_next(&tx, &name, ordered).await? > 0 {
            for row in tx.query(&admitted, &[&name]).await? {
                queues.insert(row.column::<String>(0)?);
            }
        }
        tx.commit().await?;
    }
    queues
        .into_iter()
        .map(|q| QueueName::parse(&q).map_err(|e| Fault::Store(StoreError::Corrupt(e.to_string()))))
        .collect()
}

/// A finished job a flow still needs, whatever its age: a job of a workflow that has not
/// ended (its result feeds a later step or a compensation). (A continuation's parent is
/// not kept: its counted edge is gone, so a parent pruned before its continuation's other
/// parents end leaves its result out of the context; documented in docs/workflows.md.)
const FLOW_KEEPS: &str = "(jobs.workflow_id IS NOT NULL AND EXISTS (SELECT 1 FROM workflows w \
     WHERE w.id = jobs.workflow_id AND w.state IN ('running', 'failing', 'compensating')))";

/// Deletes finished jobs past their retention, oldest first, with their attempts, in one
/// statement (jobs a flow still needs stay: [`FLOW_KEEPS`]); `SKIP LOCKED` keeps two nodes' cleaners from waiting on each other. A
/// session blocked on a pruned dead head moves on, in the caller's transaction.
pub(crate) async fn prune(
    client: &impl GenericClient,
    p: &JobPruneParams,
) -> QResult<(u64, Vec<String>)> {
    let stmt = client
        .prepare_cached(&format!(
            "WITH gone AS (DELETE FROM jobs WHERE id IN ( \
                 SELECT id FROM jobs WHERE state IN ('succeeded', 'cancelled', 'dead') \
                   AND state = ANY($1) AND finished_at < errand_now() - $2 \
                   AND NOT {FLOW_KEEPS} \
                 ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, gate), \
             attempts AS (DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM gone)), \
             edges AS (DELETE FROM job_deps WHERE parent_id IN (SELECT id FROM gone) \
                 OR child_id IN (SELECT id FROM gone)), \
             logs AS (DELETE FROM job_logs WHERE owner IN (SELECT id FROM gone)) \
             {DELETED}"
        ))
        .await?;
    let states: Vec<&str> = p.states.iter().map(|s| s.as_str()).collect();
    let older = crate::job_row::millis(p.older_than);
    let row = client
        .query_one(&stmt, &[&states, &older, &i64::from(p.limit)])
        .await?;
    // A session blocked on a pruned dead head moves on.
    crate::queue::deleted(client, &row).await
}

/// How long until `work` is next due by the database's clock (see
/// [`errand_store::Store::due_in`]).
pub(crate) async fn due_in(
    client: &impl GenericClient,
    work: DueWork,
) -> QResult<Option<Duration>> {
    let sql = match work {
        DueWork::Promote => {
            "SELECT (SELECT run_at FROM jobs WHERE state = 'scheduled' ORDER BY run_at LIMIT 1) \
             - errand_now()"
        }
        // The soonest lease end is the first entry of the lease index; a timeout may end
        // sooner, and only running jobs with a timeout are looked at for it.
        DueWork::Rescue => {
            "SELECT LEAST((SELECT lease_expires_at FROM jobs WHERE state = 'running' \
                           ORDER BY lease_expires_at LIMIT 1), \
                          (SELECT min(started_at + timeout_ms) FROM jobs \
                           WHERE state = 'running' AND timeout_ms IS NOT NULL)) - errand_now()"
        }
        // A buffered slot whose last run ended is due now, as `schedule_due` counts it; a
        // schedule that fires ahead is due `$1` before its slot.
        DueWork::Fire { .. } => {
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM schedules s \
                   LEFT JOIN jobs j ON j.id = s.last_job_id \
                   WHERE NOT s.paused AND s.buffered_slot IS NOT NULL \
                   AND (j.state IS NULL OR j.state IN ('succeeded', 'dead', 'cancelled'))) \
               THEN 0 ELSE LEAST( \
                   (SELECT next_fire_at FROM schedules WHERE NOT paused AND NOT fires_ahead \
                    AND next_fire_at IS NOT NULL ORDER BY next_fire_at LIMIT 1), \
                   (SELECT next_fire_at FROM schedules WHERE NOT paused AND fires_ahead \
                    AND next_fire_at IS NOT NULL ORDER BY next_fire_at LIMIT 1) - $1::bigint) \
                 - errand_now() END"
        }
        DueWork::Deadline => {
            "SELECT (SELECT deadline_at FROM jobs WHERE deadline_at IS NOT NULL \
                     AND state IN ('available', 'scheduled', 'running') AND step_role = 'step' \
                     AND workflow_id IS NOT NULL \
                     ORDER BY deadline_at LIMIT 1) - errand_now()"
        }
    };
    let stmt = client.prepare_cached(sql).await?;
    let row = match work {
        DueWork::Fire { ahead } => {
            let ahead = errand_store::lead_millis(ahead);
            client.query_one(&stmt, &[&ahead]).await?
        }
        _ => client.query_one(&stmt, &[]).await?,
    };
    let wait: Option<i64> = row.column(0)?;
    Ok(wait.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
}
