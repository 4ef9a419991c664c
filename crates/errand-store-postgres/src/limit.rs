//! Kind and rate-key limits (`limits` rows): put, get, list, delete, and reading stored
//! rates and token buckets.

use deadpool_postgres::GenericClient;
use errand_core::throttle::{Limit, LimitInfo, LimitScope, RateLimit, TokenBucket};
use errand_store::StoreError;
use tokio_postgres::Row;

use crate::fault::{corrupt, Fault, QResult, RowExt};

/// A stored rate (limit, period, burst), when the row has one.
pub(crate) fn rate_of(
    limit: Option<i32>,
    period_ms: Option<i64>,
    burst: Option<i32>,
) -> Option<RateLimit> {
    match (limit, period_ms) {
        (Some(l), Some(p)) => Some(RateLimit {
            limit: l.max(0) as u32,
            period_ms: p.max(0) as u64,
            burst: burst.map(|b| b.max(0) as u32),
        }),
        _ => None,
    }
}

/// A stored bucket; `None` (full) when never drawn from.
pub(crate) fn bucket_of(tokens: Option<f64>, at: Option<i64>) -> Option<TokenBucket> {
    match (tokens, at) {
        (Some(tokens), Some(at)) => Some(TokenBucket { tokens, at }),
        _ => None,
    }
}

/// The stored columns of a rate: (limit, period, burst).
pub(crate) fn rate_columns(r: Option<&RateLimit>) -> (Option<i32>, Option<i64>, Option<i32>) {
    (
        r.map(|r| i32::try_from(r.limit).unwrap_or(i32::MAX)),
        r.map(|r| i64::try_from(r.period_ms).unwrap_or(i64::MAX)),
        r.and_then(|r| r.burst)
            .map(|b| i32::try_from(b).unwrap_or(i32::MAX)),
    )
}

/// Whole tokens now in a bucket of `rate`.
pub(crate) fn tokens_now(rate: &RateLimit, bucket: Option<TokenBucket>, now: i64) -> u32 {
    bucket
        .unwrap_or_else(|| TokenBucket::full(rate, now))
        .refilled(rate, now)
        .whole()
}

const COLUMNS: &str = "l.scope, l.name, l.concurrency, l.rate_limit, l.rate_period_ms, l.rate_burst, \
     l.tokens, l.tokens_at, errand_now(), \
     CASE WHEN l.scope = 'kind' THEN (SELECT COUNT(*) FROM jobs WHERE kind = l.name AND state = 'running') \
          ELSE (SELECT COUNT(*) FROM jobs WHERE rate_key = l.name AND state = 'running') END";

fn info_from_row(row: &Row) -> QResult<LimitInfo> {
    let scope: String = row.column(0)?;
    let rate = rate_of(row.column(3)?, row.column(4)?, row.column(5)?);
    let bucket = bucket_of(row.column(6)?, row.column(7)?);
    let now: i64 = row.column(8)?;
    let running: i64 = row.column(9)?;
    Ok(LimitInfo {
        limit: Limit {
            scope: LimitScope::parse(&scope).map_err(corrupt)?,
            name: row.column(1)?,
            concurrency: row.column::<Option<i32>>(2)?.map(|c| c.max(0) as u32),
            rate,
        },
        running: running.max(0) as u64,
        tokens: rate.map(|r| tokens_now(&r, bucket, now)),
    })
}

fn not_found(scope: LimitScope, name: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("limit {}:{name}", scope.as_str()),
    })
}

/// Creates or replaces a limit; a changed rate starts with a full bucket.
pub(crate) async fn put(client: &impl GenericClient, limit: &Limit) -> QResult<LimitInfo> {
    limit
        .validate()
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    let (rl, rp, rb) = rate_columns(limit.rate.as_ref());
    let conc = limit
        .concurrency
        .map(|c| i32::try_from(c).unwrap_or(i32::MAX));
    let stmt = client
        .prepare_cached(
            "INSERT INTO limits (scope, name, concurrency, rate_limit, rate_period_ms, rate_burst) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (scope, name) DO UPDATE SET concurrency = EXCLUDED.concurrency, \
                 rate_limit = EXCLUDED.rate_limit, rate_period_ms = EXCLUDED.rate_period_ms, \
                 rate_burst = EXCLUDED.rate_burst, \
                 tokens = CASE WHEN (limits.rate_limit, limits.rate_period_ms, limits.rate_burst) \
                     IS NOT DISTINCT FROM (EXCLUDED.rate_limit, EXCLUDED.rate_period_ms, EXCLUDED.rate_burst) \
                     THEN limits.tokens ELSE NULL END, \
                 tokens_at = CASE WHEN (limits.rate_limit, limits.rate_period_ms, limits.rate_burst) \
                     IS NOT DISTINCT FROM (EXCLUDED.rate_limit, EXCLUDED.rate_period_ms, EXCLUDED.rate_burst) \
                     THEN limits.tokens_at ELSE NULL END",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[&limit.scope.as_str(), &limit.name, &conc, &rl, &rp, &rb],
        )
        .await?;
    get(client, limit.scope, &limit.name).await
}

/// One limit with its running jobs and tokens now.
pub(crate) async fn get(
    client: &impl GenericClient,
    scope: LimitScope,
    name: &str,
) -> QResult<LimitInfo> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM limits l WHERE l.scope = $1 AND l.name = $2"
        ))
        .await?;
    let row = client
        .query_opt(&stmt, &[&scope.as_str(), &name])
        .await?
        .ok_or_else(|| not_found(scope, name))?;
    info_from_row(&row)
}

/// Every limit, by scope then name.
pub(crate) async fn list(client: &impl GenericClient) -> QResult<Vec<LimitInfo>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM limits l ORDER BY l.scope COLLATE \"C\", l.name COLLATE \"C\""
        ))
        .await?;
    client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(info_from_row)
        .collect()
}

/// Deletes a limit.
pub(crate) async fn delete(
    client: &impl GenericClient,
    scope: LimitScope,
    name: &str,
) -> QResult<()> {
    let stmt = client
        .prepare_cached("DELETE FROM limits WHERE scope = $1 AND name = $2")
        .await?;
    if client.execute(&stmt, &[&scope.as_str(), &name]).await? == 0 {
        return Err(not_found(scope, name));
    }
    Ok(())
}
