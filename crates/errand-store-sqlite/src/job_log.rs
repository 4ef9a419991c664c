//! Lines hosted runs printed: appended in batches, bounded per attempt, listed by cursor,
//! and pruned by age when their owner is no job.

use errand_core::time::to_timestamp;
use errand_core::{JobId, LeaseToken, LogEntry, LogStream, Millis};
use errand_store::{JobLogAppendParams, JobLogListParams, StoreError};
use rusqlite::{params, Connection};

use crate::fault::{Fault, QResult};
use crate::job_write::fenced;

/// A batch of lines with their JSON already rendered on the caller's thread, so that the
/// writer inserts the whole batch with one statement.
pub(crate) struct PreparedLines {
    owner: uuid::Uuid,
    attempt: u32,
    lease_token: Option<LeaseToken>,
    count: u64,
    /// `[[at, stream, line], ...]`.
    json: String,
    keep_head: u64,
    keep_tail: u64,
}

/// Renders a batch for [`append`].
pub(crate) fn prepare(p: JobLogAppendParams) -> Result<PreparedLines, StoreError> {
    let rows: Vec<(Millis, &str, &str)> = p
        .lines
        .iter()
        .map(|l| (l.at, l.stream.as_str(), l.line.as_str()))
        .collect();
    let json = serde_json::to_string(&rows).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(PreparedLines {
        owner: p.owner,
        attempt: p.attempt,
        lease_token: p.lease_token,
        count: p.lines.len() as u64,
        json,
        keep_head: u64::from(p.keep_head),
        keep_tail: u64::from(p.keep_tail.max(1)),
    })
}

fn seq_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Appends a batch, fenced when it carries a token, and applies the per-attempt bound:
/// lines that fall in the dropped middle are never inserted, and older ones now in it are
/// deleted. Returns the last line's number.
pub(crate) fn append(conn: &Connection, now: Millis, p: &PreparedLines) -> QResult<u64> {
    let owner = p.owner.as_bytes().as_slice();
    if let Some(token) = p.lease_token {
        let held = conn
            .prepare_cached(
                "SELECT 1 FROM jobs WHERE id = ?1 AND state = 'running' AND lease_token = ?2 \
                 AND lease_expires_at > ?3",
            )?
            .exists(params![owner, token.as_bytes().as_slice(), now])?;
        if !held {
            return Err(fenced(conn, JobId(p.owner)));
        }
    }
    let base: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE owner = ?1 AND attempt = ?2",
        )?
        .query_row(params![owner, p.attempt], |r| r.get(0))?;
    let base = u64::try_from(base).map_err(|_| corrupt("a log line number is negative"))?;
    if p.count == 0 {
        return Ok(base);
    }
    let last = base + p.count;
    // Lines numbered in (head, cut] are dropped.
    let head = p.keep_head;
    let cut = last.saturating_sub(p.keep_tail);
    conn.prepare_cached(
        "INSERT INTO job_logs (owner, attempt, seq, at, stream, line) \
         SELECT ?1, ?2, ?3 + j.key + 1, json_extract(j.value, '$[0]'), \
                json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]') \
         FROM json_each(?4) AS j \
         WHERE ?3 + j.key + 1 <= ?5 OR ?3 + j.key + 1 > ?6",
    )?
    .execute(params![
        owner,
        p.attempt,
        seq_value(base),
        p.json,
        seq_value(head),
        seq_value(cut)
    ])?;
    if cut > head && base > head {
        conn.prepare_cached(
            "DELETE FROM job_logs WHERE owner = ?1 AND attempt = ?2 AND seq > ?3 AND seq <= ?4",
        )?
        .execute(params![owner, p.attempt, seq_value(head), seq_value(cut)])?;
    }
    Ok(last)
}

fn corrupt(what: &str) -> Fault {
    Fault::Store(StoreError::Corrupt(what.into()))
}

/// A page of an owner's lines by attempt, then number.
pub(crate) fn list(conn: &Connection, p: &JobLogListParams) -> QResult<Vec<LogEntry>> {
    let (after_attempt, after_seq) = p
        .after
        .map(|(a, s)| (i64::from(a), seq_value(s)))
        .unwrap_or((-1, -1));
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, seq, at, stream, line FROM job_logs \
         WHERE owner = ?1 AND (?2 IS NULL OR attempt = ?2) AND (attempt, seq) > (?3, ?4) \
         ORDER BY attempt, seq LIMIT +?5",
    )?;
    let mut rows = stmt.query(params![
        p.owner.as_bytes().as_slice(),
        p.attempt,
        after_attempt,
        after_seq,
        p.limit
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(1)?;
        let stream: String = row.get(3)?;
        let stream = LogStream::from_stored(&stream)
            .map_err(|e| Fault::Store(StoreError::Corrupt(e.to_string())))?;
        out.push(LogEntry {
            attempt: row.get(0)?,
            seq: u64::try_from(seq).map_err(|_| corrupt("a log line number is negative"))?,
            at: to_timestamp(row.get(2)?),
            level: stream.level().to_string(),
            stream,
            line: row.get(4)?,
        });
    }
    Ok(out)
}

/// Deletes up to `limit` lines older than `older_than_ms` whose owner is no job (the logs
/// of continuous instances), oldest first.
pub(crate) fn prune(
    conn: &Connection,
    now: Millis,
    older_than_ms: Millis,
    limit: u32,
) -> QResult<u64> {
    let n = conn
        .prepare_cached(
            "DELETE FROM job_logs WHERE (owner, attempt, seq) IN ( \
                 SELECT owner, attempt, seq FROM job_logs INDEXED BY job_logs_at \
                 WHERE at < ?1 AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_logs.owner) \
                 ORDER BY at LIMIT +?2)",
        )?
        .execute(params![now.saturating_sub(older_than_ms), limit])?;
    Ok(n as u64)
}
