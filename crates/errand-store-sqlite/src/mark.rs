//! Marks: a job inserted at most once per `(scope, key)`, ever.

use errand_core::Millis;
use errand_store::InsertedJob;
use rusqlite::{params, Connection};

use crate::fault::QResult;
use crate::job_write::{self, PreparedJob};

/// Inserts the mark and the job; `None` when the mark was already there.
pub(crate) fn insert_marked(
    conn: &Connection,
    now: Millis,
    job: PreparedJob,
    scope: &str,
    key: &str,
    window: std::time::Duration,
) -> QResult<Option<InsertedJob>> {
    let id = job.id();
    let n = conn
        .prepare_cached(
            "INSERT INTO job_marks (scope, key, job_id, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![scope, key, id.as_bytes().as_slice(), now])?;
    if n == 0 {
        return Ok(None);
    }
    let inserted = job_write::insert_many(conn, now, vec![job], window)?.pop();
    if let Some(r) = &inserted {
        if r.job.id != id {
            // An idempotency key gave an earlier job: the mark names that one.
            conn.prepare_cached("UPDATE job_marks SET job_id = ?1 WHERE scope = ?2 AND key = ?3")?
                .execute(params![r.job.id.as_bytes().as_slice(), scope, key])?;
        }
    }
    Ok(inserted)
}

/// Every key of a scope, sorted.
pub(crate) fn list(conn: &Connection, scope: &str) -> QResult<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT key FROM job_marks WHERE scope = ?1 ORDER BY key")?;
    let rows = stmt.query_map([scope], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes these keys of a scope; returns how many there were.
pub(crate) fn delete(conn: &Connection, scope: &str, keys: &[String]) -> QResult<u64> {
    let mut stmt = conn.prepare_cached("DELETE FROM job_marks WHERE scope = ?1 AND key = ?2")?;
    let mut n = 0u64;
    for key in keys {
        n += stmt.execute(params![scope, key])? as u64;
    }
    Ok(n)
}
