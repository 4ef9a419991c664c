//! Lines hosted runs printed: appended in batches, bounded per attempt, listed by cursor,
//! and pruned by age when their owner is no job.

use deadpool_postgres::GenericClient;
use errand_core::time::to_timestamp;
use errand_core::{JobId, LogEntry, LogStream};
use errand_store::{JobLogAppendParams, JobLogListParams};

use crate::fault::{corrupt, QResult, RowExt};
use crate::job_write::{fenced, lease_held};

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The advisory lock key that serialises appends to one owner across nodes, so two
/// appends never number their lines alike.
fn owner_lock(owner: uuid::Uuid) -> i64 {
    let (hi, lo) = owner.as_u64_pair();
    (hi ^ lo) as i64
}

/// Appends a batch inside the caller's transaction, fenced when it carries a token, and
/// applies the per-attempt bound in the same statement: lines that fall in the dropped
/// middle are never inserted, and older ones now in it are deleted. Returns the last line's
/// number.
pub(crate) async fn append(client: &impl GenericClient, p: &JobLogAppendParams) -> QResult<u64> {
    if let Some(token) = p.lease_token {
        let sql = format!(
            "SELECT 1 FROM jobs WHERE id = $1 AND {}",
            lease_held("", "$2")
        );
        let stmt = client.prepare_cached(&sql).await?;
        if client
            .query_opt(&stmt, &[&p.owner, &token.0])
            .await?
            .is_none()
        {
            return Err(fenced(client, JobId(p.owner)).await);
        }
    }
    let lock = client
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await?;
    client.execute(&lock, &[&owner_lock(p.owner)]).await?;
    let stmt = client
        .prepare_cached(
            "WITH base AS (SELECT COALESCE(MAX(seq), 0)::bigint AS b FROM job_logs \
                 WHERE owner = $1 AND attempt = $2), \
             ins AS (INSERT INTO job_logs (owner, attempt, seq, at, stream, line) \
                 SELECT $1, $2, base.b + u.ord, u.at, u.stream, u.line \
                 FROM base, UNNEST($3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY \
                     AS u(at, stream, line, ord) \
                 WHERE base.b + u.ord <= $6 OR base.b + u.ord > base.b + $8 - $7), \
             del AS (DELETE FROM job_logs l USING base \
                 WHERE l.owner = $1 AND l.attempt = $2 AND l.seq > $6 AND l.seq <= base.b + $8 - $7) \
             SELECT base.b + $8 FROM base",
        )
        .await?;
    let mut at = Vec::with_capacity(p.lines.len());
    let mut stream = Vec::with_capacity(p.lines.len());
    let mut line = Vec::with_capacity(p.lines.len());
    for l in &p.lines {
        at.push(l.at);
        stream.push(l.stream.as_str());
        line.push(l.line.as_str());
    }
    let row = client
        .query_one(
            &stmt,
            &[
                &p.owner,
                &int(p.attempt),
                &at,
                &stream,
                &line,
                &i64::from(p.keep_head),
                &i64::from(p.keep_tail.max(1)),
                &big(p.lines.len() as u64),
            ],
        )
        .await?;
    let last: i64 = row.column(0)?;
    u64::try_from(last).map_err(|_| corrupt("a log line number is negative"))
}

/// A page of an owner's lines by attempt, then number.
pub(crate) async fn list(
    client: &impl GenericClient,
    p: &JobLogListParams,
) -> QResult<Vec<LogEntry>> {
    let stmt = client
        .prepare_cached(
            "SELECT attempt, seq, at, stream, line FROM job_logs \
             WHERE owner = $1 AND ($2::integer IS NULL OR attempt = $2) \
               AND (attempt, seq) > ($3::integer, $4::bigint) \
             ORDER BY attempt, seq LIMIT $5",
        )
        .await?;
    let (after_attempt, after_seq) = p.after.map(|(a, s)| (int(a), big(s))).unwrap_or((-1, -1));
    let rows = client
        .query(
            &stmt,
            &[
                &p.owner,
                &p.attempt.map(int),
                &after_attempt,
                &after_seq,
                &i64::from(p.limit),
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let stream: String = row.column(3)?;
        let stream = LogStream::from_stored(&stream).map_err(corrupt)?;
        out.push(LogEntry {
            attempt: u32::try_from(row.column::<i32>(0)?)
                .map_err(|_| corrupt("a log attempt is negative"))?,
            seq: u64::try_from(row.column::<i64>(1)?)
                .map_err(|_| corrupt("a log line number is negative"))?,
            at: to_timestamp(row.column(2)?),
            level: stream.level().to_string(),
            stream,
            line: row.column(4)?,
        });
    }
    Ok(out)
}

/// Deletes up to `limit` lines older than `older_than_ms` whose owner is no job (the logs
/// of continuous instances), oldest first; `SKIP LOCKED` keeps two nodes' cleaners apart.
pub(crate) async fn prune(
    client: &impl GenericClient,
    older_than_ms: i64,
    limit: u32,
) -> QResult<u64> {
    let stmt = client
        .prepare_cached(
            "WITH gone AS (DELETE FROM job_logs WHERE (owner, attempt, seq) IN ( \
                 SELECT owner, attempt, seq FROM job_logs l \
                 WHERE at < errand_now() - $1 AND NOT EXISTS (SELECT 1 FROM jobs WHERE id = l.owner) \
                 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) \
             SELECT COUNT(*) FROM gone",
        )
        .await?;
    let n: i64 = client
        .query_one(&stmt, &[&older_than_ms, &i64::from(limit)])
        .await?
        .column(0)?;
    Ok(n.max(0) as u64)
}
