//! Reads of jobs and attempts. They run on the read pool.

use errand_core::{Attempt, Job, JobId, JobState};
use errand_store::JobListParams;
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use crate::fault::QResult;
use crate::job_row::{attempt_from_row, load_job, query_jobs, ATTEMPT_COLUMNS, JOB_COLUMNS};

/// A page of jobs, newest first. Each filter that has an index drives the read, so a
/// page stops after `limit` matches instead of scanning every job: a tag walks `job_tags`
/// (kept by triggers) newest first, a kind walks `jobs_kind`, a queue walks
/// `jobs_queue_list` (with a state, one range; without, [`list_queue`]), and otherwise the
/// primary key.
pub(crate) fn list(conn: &Connection, p: &JobListParams) -> QResult<Vec<Job>> {
    if let (Some(queue), None, None, None) = (&p.queue, p.state, &p.kind, &p.tag) {
        return list_queue(conn, queue.as_str(), p.before, p.limit);
    }
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    // CROSS JOIN fixes job_tags as the outer loop: its key gives the page order.
    let (from, id) = match &p.tag {
        Some(t) => {
            clauses.push("job_tags.tag = ?");
            args.push(SqlValue::Text(t.clone()));
            (
                "job_tags CROSS JOIN jobs ON jobs.id = job_tags.job_id",
                "job_tags.job_id",
            )
        }
        None if p.kind.is_some() => ("jobs INDEXED BY jobs_kind", "jobs.id"),
        None if p.queue.is_some() && p.state.is_some() => {
            ("jobs INDEXED BY jobs_queue_list", "jobs.id")
        }
        None => ("jobs", "jobs.id"),
    };
    if let Some(q) = &p.queue {
        clauses.push("queue = ?");
        args.push(SqlValue::Text(q.as_str().into()));
    }
    if let Some(s) = p.state {
        clauses.push("state = ?");
        args.push(SqlValue::Text(s.as_str().into()));
    }
    if let Some(k) = &p.kind {
        clauses.push("kind = ?");
        args.push(SqlValue::Text(k.as_str().into()));
    }
    let before = format!("{id} < ?");
    if let Some(b) = p.before {
        clauses.push(&before);
        args.push(SqlValue::Blob(b.as_bytes().to_vec()));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    args.push(SqlValue::Integer(i64::from(p.limit)));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM {from} {filter} ORDER BY {id} DESC LIMIT +?"
    ))?;
    query_jobs(&mut stmt, rusqlite::params_from_iter(args))
}

/// A queue's page when nothing else narrows it: the newest `limit` jobs of each state, each
/// one range of `jobs_queue_list` (queue, state, id), merged and cut to `limit`. It reads
/// at most `limit` index entries per state (and `limit` rows) however many jobs the queue
/// holds; `queue = ?` alone would sort every job of the queue first.
fn list_queue(
    conn: &Connection,
    queue: &str,
    before: Option<JobId>,
    limit: u32,
) -> QResult<Vec<Job>> {
    // ?1 the queue, ?2 the page size, ?3 the cursor (when there is one).
    let cursor = if before.is_some() { "AND id < ?3" } else { "" };
    let arms: Vec<String> = JobState::ALL
        .iter()
        .map(|s| {
            format!(
                "SELECT pick FROM (SELECT id AS pick FROM jobs INDEXED BY jobs_queue_list \
                 WHERE queue = ?1 AND state = '{}' {cursor} ORDER BY id DESC LIMIT +?2)",
                s.as_str()
            )
        })
        .collect();
    // CROSS JOIN keeps the picks as the outer loop: each is one primary-key lookup.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM ({}) AS picks CROSS JOIN jobs ON jobs.id = picks.pick \
         ORDER BY jobs.id DESC LIMIT +?2",
        arms.join(" UNION ALL ")
    ))?;
    let mut args = vec![
        SqlValue::Text(queue.to_string()),
        SqlValue::Integer(i64::from(limit)),
    ];
    if let Some(b) = before {
        args.push(SqlValue::Blob(b.as_bytes().to_vec()));
    }
    query_jobs(&mut stmt, rusqlite::params_from_iter(args))
}

/// A job's attempts, first first.
pub(crate) fn attempts(conn: &Connection, id: JobId) -> QResult<Vec<Attempt>> {
    load_job(conn, id)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM job_attempts WHERE job_id = ?1 ORDER BY attempt"
    ))?;
    let mut rows = stmt.query([id.as_bytes().as_slice()])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(attempt_from_row(row)?);
    }
    Ok(out)
}
