//! Kind and rate-key limits: their rows, their token buckets, and how much of each is in
//! use now.

use errand_core::throttle::{Limit, LimitInfo, LimitScope, TokenBucket};
use errand_core::Millis;
use errand_store::StoreError;
use rusqlite::{params, Connection, Row};

use crate::fault::{Fault, QResult};
use crate::queue_row::rate_at;

const COLUMNS: &str =
    "scope, name, concurrency, rate_limit, rate_period_ms, rate_burst, tokens, tokens_at";

fn from_row(row: &Row<'_>) -> QResult<(Limit, Option<TokenBucket>)> {
    let scope: String = row.get(0)?;
    let scope =
        LimitScope::parse(&scope).map_err(|e| Fault::Store(StoreError::Corrupt(e.to_string())))?;
    let (rate, bucket) = rate_at(row, 3)?;
    Ok((
        Limit {
            scope,
            name: row.get(1)?,
            concurrency: row.get(2)?,
            rate,
        },
        bucket,
    ))
}

fn not_found(scope: LimitScope, name: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("limit {}/{name}", scope.as_str()),
    })
}

/// A limit and its bucket, if one is set.
pub(crate) fn read(
    conn: &Connection,
    scope: LimitScope,
    name: &str,
) -> QResult<Option<(Limit, Option<TokenBucket>)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM limits WHERE scope = ?1 AND name = ?2"
    ))?;
    let mut rows = stmt.query(params![scope.as_str(), name])?;
    match rows.next()? {
        Some(row) => from_row(row).map(Some),
        None => Ok(None),
    }
}

/// Jobs a limit covers running now: of the kind, or naming the rate key.
pub(crate) fn running(conn: &Connection, scope: LimitScope, name: &str) -> QResult<u64> {
    let sql = match scope {
        LimitScope::Kind => {
            "SELECT count(*) FROM jobs INDEXED BY jobs_running_kind WHERE kind = ?1 AND state = 'running'"
        }
        LimitScope::Key => {
            "SELECT count(*) FROM jobs INDEXED BY jobs_leases WHERE state = 'running' AND rate_key = ?1"
        }
    };
    let n: i64 = conn.prepare_cached(sql)?.query_row([name], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

fn info(
    conn: &Connection,
    now: Millis,
    limit: Limit,
    bucket: Option<TokenBucket>,
) -> QResult<LimitInfo> {
    let running = running(conn, limit.scope, &limit.name)?;
    let tokens = limit.rate.map(|r| {
        bucket
            .unwrap_or_else(|| TokenBucket::full(&r, now))
            .refilled(&r, now)
            .whole()
    });
    Ok(LimitInfo {
        limit,
        running,
        tokens,
    })
}

/// One limit with its use now.
pub(crate) fn get(
    conn: &Connection,
    now: Millis,
    scope: LimitScope,
    name: &str,
) -> QResult<LimitInfo> {
    let (limit, bucket) = read(conn, scope, name)?.ok_or_else(|| not_found(scope, name))?;
    info(conn, now, limit, bucket)
}

/// Every limit by scope and name.
pub(crate) fn list(conn: &Connection, now: Millis) -> QResult<Vec<LimitInfo>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM limits ORDER BY scope, name"
    ))?;
    let mut rows = stmt.query([])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(from_row(row)?);
    }
    drop(rows);
    found
        .into_iter()
        .map(|(l, b)| info(conn, now, l, b))
        .collect()
}

/// Creates or replaces a limit (validated); a changed rate refills its bucket.
pub(crate) fn put(conn: &Connection, now: Millis, limit: &Limit) -> QResult<LimitInfo> {
    limit
        .validate()
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    let bucket = match read(conn, limit.scope, &limit.name)? {
        Some((old, bucket)) if old.rate == limit.rate => bucket,
        _ => None,
    };
    conn.prepare_cached(
        "INSERT INTO limits (scope, name, concurrency, rate_limit, rate_period_ms, rate_burst, \
         tokens, tokens_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (scope, name) DO UPDATE SET concurrency = excluded.concurrency, \
         rate_limit = excluded.rate_limit, rate_period_ms = excluded.rate_period_ms, \
         rate_burst = excluded.rate_burst, tokens = excluded.tokens, tokens_at = excluded.tokens_at",
    )?
    .execute(params![
        limit.scope.as_str(),
        limit.name,
        limit.concurrency,
        limit.rate.map(|r| r.limit),
        limit.rate.map(|r| r.period_ms as i64),
        limit.rate.and_then(|r| r.burst),
        bucket.map(|b| b.tokens),
        bucket.map(|b| b.at),
    ])?;
    info(conn, now, limit.clone(), bucket)
}

/// Removes a limit.
pub(crate) fn delete(conn: &Connection, scope: LimitScope, name: &str) -> QResult<()> {
    let n = conn
        .prepare_cached("DELETE FROM limits WHERE scope = ?1 AND name = ?2")?
        .execute(params![scope.as_str(), name])?;
    if n == 0 {
        return Err(not_found(scope, name));
    }
    Ok(())
}

/// Stores a limit's bucket after a claim drew from it.
pub(crate) fn save_bucket(
    conn: &Connection,
    scope: LimitScope,
    name: &str,
    b: &TokenBucket,
) -> QResult<()> {
    conn.prepare_cached(
        "UPDATE limits SET tokens = ?3, tokens_at = ?4 WHERE scope = ?1 AND name = ?2",
    )?
    .execute(params![scope.as_str(), name, b.tokens, b.at])?;
    Ok(())
}
