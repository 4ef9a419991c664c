//! Claims: leasing a queue's ready jobs. A queue without limits (and a store without kind
//! or rate-key limits) takes one statement; otherwise the claim reads candidates in claim
//! order, lets `errand_core::throttle::plan_claim` pick within every limit, leases those
//! and writes back the buckets drawn from. Gates are never looked at: parked jobs are out
//! of the claim index.

use std::collections::{BTreeSet, HashMap};

use errand_core::ordering::Gate;
use errand_core::session::SessionState;
use errand_core::throttle::{plan_claim, ClaimCandidate, ClaimLimits, LimitScope, LimitState};
use errand_core::{EventType, Job, JobId, LeaseToken, Millis};
use errand_store::{ClaimedJob, JobClaimParams, JobClaimTogetherParams, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::fault::{Fault, QResult};
use crate::job_row::{job_from_row, JOB_COLUMNS};
use crate::queue_row::{self, QueueRow};
use crate::transition::record_changes;
use crate::{fairness, limit};

/// Candidates a planned claim reads at most.
const MAX_CANDIDATES: u32 = 2000;

fn duration_ms(d: std::time::Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How many jobs of queue `?1` run now, for its concurrency: a range of `jobs_queue_list`.
pub(crate) const QUEUE_RUNNING_COUNT: &str =
    "SELECT count(*) FROM jobs WHERE queue = ?1 AND state = 'running'";

/// The SET clause of a lease, over `?1` now, `?3` worker, `?4` token, `?5` lease.
const LEASE: &str = "state = 'running', attempt = attempt + 1, worker = ?3, lease_token = ?4, \
     lease_ms = ?5, lease_expires_at = ?1 + ?5, started_at = ?1, updated_at = ?1";

/// The claim's filter on the ready index, over `?1` now, `?2` queue and (with kinds) the
/// parameter `kinds` names, a JSON array of kinds.
fn ready_filter(kinds: Option<&str>) -> String {
    let kind_filter = match kinds {
        Some(param) => format!("AND kind IN (SELECT value FROM json_each({param}))"),
        None => String::new(),
    };
    format!(
        "FROM jobs INDEXED BY jobs_ready \
         WHERE queue = ?2 AND state IN ('available', 'scheduled') AND parked = 0 AND run_at <= ?1 \
         {kind_filter} ORDER BY priority DESC, fair_rank, run_at, id"
    )
}

fn leased_row(row: &Row<'_>) -> QResult<(Job, Option<i64>)> {
    Ok((
        job_from_row(row)?,
        row.get(crate::job_row::JOB_COLUMN_COUNT)?,
    ))
}

/// Leases up to `max` ready jobs of one queue and opens an attempt for each.
pub(crate) fn claim(
    conn: &Connection,
    now: Millis,
    p: &JobClaimParams,
) -> QResult<Vec<ClaimedJob>> {
    let Some(q) = queue_row::read(conn, p.queue.as_str())? else {
        return Ok(Vec::new());
    };
    if q.paused {
        return Ok(Vec::new());
    }
    let token = LeaseToken::new();
    let kinds_json = serde_json::Value::from(
        p.kinds
            .iter()
            .map(|k| k.as_str().to_string())
            .collect::<Vec<_>>(),
    )
    .to_string();
    let mut leased = if !q.limited() && !queue_row::any_limits(conn)? {
        fast(conn, now, p, &token, &kinds_json)?
    } else {
        planned(conn, now, p, &q, &token, &kinds_json)?
    };
    leased.sort_by(|(a, ra), (b, rb)| {
        b.priority
            .cmp(&a.priority)
            .then(ra.cmp(rb))
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
    if q.fair {
        if let Some(top) = leased.iter().filter_map(|(_, r)| *r).max() {
            fairness::advance(conn, p.queue.as_str(), top)?;
        }
    }
    let jobs: Vec<Job> = leased.into_iter().map(|(j, _)| j).collect();
    let mut open_attempt = conn.prepare_cached(
        "INSERT OR REPLACE INTO job_attempts (job_id, attempt, worker, started_at, outcome, lease_token) \
         VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
    )?;
    for job in &jobs {
        open_attempt.execute(params![
            job.id.as_bytes().as_slice(),
            job.attempt,
            p.worker,
            now,
            token.as_bytes().as_slice()
        ])?;
    }
    record_changes(conn, now, jobs.iter().map(|j| (j, EventType::JobStarted)))?;
    jobs.into_iter()
        .map(|job| {
            let session = match &job.ordering.session_key {
                Some(key) => Some(session_state(conn, key)?),
                None => None,
            };
            Ok(ClaimedJob {
                job,
                lease_token: token,
                session,
            })
        })
        .collect()
}

/// Leases for each taker in turn, as [`claim`] does for one: in one transaction, so the
/// takers share its commit. The queue's row and statements are cached, so a taker costs
/// what a claim does inside a transaction (SQLite runs in this process: a statement per
/// taker costs no round trip).
pub(crate) fn claim_together(
    conn: &Connection,
    now: Millis,
    p: &JobClaimTogetherParams,
) -> QResult<Vec<Vec<ClaimedJob>>> {
    p.takers
        .iter()
        .map(|taker| claim(conn, now, &p.alone(taker)))
        .collect()
}

/// The session's state as a claim hands it to the head job.
fn session_state(conn: &Connection, key: &str) -> QResult<SessionState> {
    let row: Option<(Option<String>, i64)> = conn
        .prepare_cached("SELECT state, version FROM gates WHERE name = ?1")?
        .query_row([Gate::session_name(key)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (state, version) = row.unwrap_or((None, 0));
    let state = match state {
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| Fault::Store(StoreError::Corrupt(format!("session state: {e}"))))?,
        None => serde_json::Value::Null,
    };
    Ok(SessionState {
        key: key.to_string(),
        state,
        version: version.max(0) as u64,
    })
}

/// The fast path's one statement.
fn fast_sql(kinds: bool) -> String {
    format!(
        "UPDATE jobs SET {LEASE} WHERE id IN (SELECT id {} LIMIT +?6) \
         RETURNING {JOB_COLUMNS}, fair_rank",
        ready_filter(kinds.then_some("?7"))
    )
}

/// The planned path's candidates, over `?3` how many.
fn candidates_sql(kinds: bool) -> String {
    format!(
        "SELECT id, kind, rate_key {} LIMIT +?3",
        ready_filter(kinds.then_some("?4"))
    )
}

/// One statement: lease the first `max` ready jobs.
fn fast(
    conn: &Connection,
    now: Millis,
    p: &JobClaimParams,
    token: &LeaseToken,
    kinds_json: &str,
) -> QResult<Vec<(Job, Option<i64>)>> {
    let mut stmt = conn.prepare_cached(&fast_sql(!p.kinds.is_empty()))?;
    let lease_ms = duration_ms(p.lease);
    let mut rows = if p.kinds.is_empty() {
        stmt.query(params![
            now,
            p.queue.as_str(),
            p.worker,
            token.as_bytes().as_slice(),
            lease_ms,
            p.max
        ])?
    } else {
        stmt.query(params![
            now,
            p.queue.as_str(),
            p.worker,
            token.as_bytes().as_slice(),
            lease_ms,
            p.max,
            kinds_json
        ])?
    };
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(leased_row(row)?);
    }
    Ok(out)
}

fn limit_state(conn: &Connection, scope: LimitScope, name: &str) -> QResult<Option<LimitState>> {
    let Some((l, bucket)) = limit::read(conn, scope, name)? else {
        return Ok(None);
    };
    let running = if l.concurrency.is_some() {
        limit::running(conn, scope, name)?
    } else {
        0
    };
    Ok(Some(LimitState {
        concurrency: l.concurrency,
        running: u32::try_from(running).unwrap_or(u32::MAX),
        rate: l.rate,
        bucket,
    }))
}

/// Reads candidates, plans within the limits, leases the chosen ones and stores the
/// buckets drawn from. A job a full limit holds back stays available.
fn planned(
    conn: &Connection,
    now: Millis,
    p: &JobClaimParams,
    q: &QueueRow,
    token: &LeaseToken,
    kinds_json: &str,
) -> QResult<Vec<(Job, Option<i64>)>> {
    let n = p
        .max
        .saturating_mul(4)
        .saturating_add(64)
        .min(MAX_CANDIDATES);
    let kinds = !p.kinds.is_empty();
    let mut stmt = conn.prepare_cached(&candidates_sql(kinds))?;
    let mut rows = if kinds {
        stmt.query(params![now, p.queue.as_str(), n, kinds_json])?
    } else {
        stmt.query(params![now, p.queue.as_str(), n])?
    };
    let mut candidates = Vec::new();
    while let Some(row) = rows.next()? {
        let id: Vec<u8> = row.get(0)?;
        candidates.push(ClaimCandidate {
            id: JobId::from_slice(&id).ok_or_else(|| {
                Fault::Store(StoreError::Corrupt("job id is not 16 bytes".into()))
            })?,
            kind: row.get(1)?,
            rate_key: row.get(2)?,
        });
    }
    drop(rows);
    let mut limits = ClaimLimits::default();
    if q.limited() {
        let running = if q.settings.concurrency.is_some() {
            conn.prepare_cached(QUEUE_RUNNING_COUNT)?
                .query_row([p.queue.as_str()], |r| r.get::<_, i64>(0))?
        } else {
            0
        };
        limits.queue = Some(LimitState {
            concurrency: q.settings.concurrency,
            running: u32::try_from(running.max(0)).unwrap_or(u32::MAX),
            rate: q.settings.rate,
            bucket: q.bucket,
        });
    }
    let kind_names: BTreeSet<&str> = candidates.iter().map(|c| c.kind.as_str()).collect();
    for k in kind_names {
        if let Some(s) = limit_state(conn, LimitScope::Kind, k)? {
            limits.kinds.insert(k.to_string(), s);
        }
    }
    let key_names: BTreeSet<&str> = candidates
        .iter()
        .filter_map(|c| c.rate_key.as_deref())
        .collect();
    for k in key_names {
        if let Some(s) = limit_state(conn, LimitScope::Key, k)? {
            limits.keys.insert(k.to_string(), s);
        }
    }
    let plan = plan_claim(p.max, &candidates, &limits, now);
    let mut lease = conn.prepare_cached(&format!(
        "UPDATE jobs SET {LEASE} WHERE id = ?2 AND state IN ('available', 'scheduled') \
         AND parked = 0 RETURNING {JOB_COLUMNS}, fair_rank"
    ))?;
    let lease_ms = duration_ms(p.lease);
    let mut out = Vec::with_capacity(plan.take.len());
    for id in &plan.take {
        let mut rows = lease.query(params![
            now,
            id.as_bytes().as_slice(),
            p.worker,
            token.as_bytes().as_slice(),
            lease_ms
        ])?;
        if let Some(row) = rows.next()? {
            out.push(leased_row(row)?);
        }
    }
    if let Some(b) = &plan.queue_bucket {
        queue_row::save_bucket(conn, p.queue.as_str(), b)?;
    }
    let buckets: HashMap<(LimitScope, &String), _> = plan
        .kind_buckets
        .iter()
        .map(|(k, b)| ((LimitScope::Kind, k), b))
        .chain(
            plan.key_buckets
                .iter()
                .map(|(k, b)| ((LimitScope::Key, k), b)),
        )
        .collect();
    for ((scope, name), b) in buckets {
        limit::save_bucket(conn, scope, name, b)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{ADMIT_DUE, ADMIT_SESSION};

    /// The plan of `sql`, one line per step.
    fn plan(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        let rows = stmt
            .query_map(args, |r| r.get::<_, String>(3))
            .expect("plan");
        rows.collect::<Result<Vec<_>, _>>()
            .expect("rows")
            .join("\n")
    }

    /// Claims, admissions and the prune walk an index in the order they need, whatever the
    /// queue holds: no table scan, no sort. This is what keeps a claim on a queue with a million
    /// parked jobs as cheap as on an empty one (parked jobs are not in `jobs_ready`).
    #[test]
    fn claims_and_admissions_read_only_what_they_take() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            crate::SqliteStore::open(&crate::SqliteOptions::in_dir(dir.path())).expect("open");
        drop(store);
        let conn = Connection::open(dir.path().join("errand.sqlite3")).expect("open");
        let n: &dyn rusqlite::ToSql = &0i64;
        let t: &dyn rusqlite::ToSql = &"q";
        let k: &dyn rusqlite::ToSql = &"[\"k\"]";
        let cases = [
            (
                "claim",
                fast_sql(false),
                vec![n, t, n, n, n, n],
                "jobs_ready",
            ),
            (
                "claim by kind",
                fast_sql(true),
                vec![n, t, n, n, n, n, k],
                "jobs_ready",
            ),
            (
                "candidates",
                candidates_sql(false),
                vec![n, t, n],
                "jobs_ready",
            ),
            (
                "admit session",
                ADMIT_SESSION.to_string(),
                vec![n, t, n],
                "jobs_gate",
            ),
            (
                "admit due",
                ADMIT_DUE.to_string(),
                vec![n, t, n],
                "jobs_gate",
            ),
            (
                "queue running count",
                QUEUE_RUNNING_COUNT.to_string(),
                vec![t],
                "jobs_queue_list",
            ),
            (
                "prune",
                crate::maintenance::prune_pick_sql(),
                vec![t, t, n, n],
                "jobs_finished",
            ),
        ];
        for (what, sql, args, index) in cases {
            let p = plan(&conn, &sql, &args);
            assert!(
                p.contains(&format!("USING INDEX {index}"))
                    || p.contains(&format!("USING COVERING INDEX {index}")),
                "{what}: {p}"
            );
            assert!(!p.contains("SCAN jobs"), "{what} scans: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{what} sorts: {p}");
        }
    }

    /// The claim's statement is prepared once and reused: a statement that SQLite must
    /// prepare again on every run (because a bound value shaped its plan) costs more than
    /// the claim itself.
    #[test]
    fn the_claim_statement_is_not_prepared_again_per_claim() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            crate::SqliteStore::open(&crate::SqliteOptions::in_dir(dir.path())).expect("open");
        drop(store);
        let conn = Connection::open(dir.path().join("errand.sqlite3")).expect("open");
        for kinds in [false, true] {
            let sql = fast_sql(kinds);
            for now in 1..=5i64 {
                let mut stmt = conn.prepare_cached(&sql).expect("prepare");
                let mut rows = if kinds {
                    stmt.query(rusqlite::params![
                        now,
                        "q",
                        "w",
                        vec![0u8; 16],
                        1000,
                        1,
                        "[\"k\"]"
                    ])
                } else {
                    stmt.query(rusqlite::params![now, "q", "w", vec![0u8; 16], 1000, 1])
                }
                .expect("query");
                while rows.next().expect("row").is_some() {}
                drop(rows);
                assert_eq!(
                    stmt.get_status(rusqlite::StatementStatus::RePrepare),
                    0,
                    "claim (kinds: {kinds}) was prepared again at run {now}"
                );
            }
        }
    }
}
