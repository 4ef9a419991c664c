//! A queue's row as issue 11 extends it: settings (concurrency, rate and its bucket,
//! defaults for new jobs) and fairness bookkeeping, read and written in one place.

use errand_core::queue::{JobDefaults, QueueSettings, QueueSettingsPatch};
use errand_core::throttle::{RateLimit, TokenBucket};
use errand_core::Millis;
use errand_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::fault::{Fault, QResult};

/// The columns [`from_row`] reads, in its order.
pub(crate) const QUEUE_COLUMNS: &str = "paused, concurrency, rate_limit, rate_period_ms, \
     rate_burst, tokens, tokens_at, defaults, fair, vtime";

/// A queue's row.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueRow {
    pub(crate) paused: bool,
    pub(crate) settings: QueueSettings,
    pub(crate) bucket: Option<TokenBucket>,
    pub(crate) fair: bool,
    pub(crate) vtime: i64,
}

impl QueueRow {
    /// Whether a claim must plan around the queue's own limits.
    pub(crate) fn limited(&self) -> bool {
        self.settings.concurrency.is_some() || self.settings.rate.is_some()
    }
}

/// Reads a rate limit and its bucket from columns `at..at+5`
/// (limit, period, burst, tokens, tokens_at).
pub(crate) fn rate_at(
    row: &Row<'_>,
    at: usize,
) -> rusqlite::Result<(Option<RateLimit>, Option<TokenBucket>)> {
    let limit: Option<u32> = row.get(at)?;
    let period: Option<i64> = row.get(at + 1)?;
    let burst: Option<u32> = row.get(at + 2)?;
    let tokens: Option<f64> = row.get(at + 3)?;
    let tokens_at: Option<Millis> = row.get(at + 4)?;
    let rate = match (limit, period) {
        (Some(limit), Some(period)) => Some(RateLimit {
            limit,
            period_ms: period.max(1) as u64,
            burst,
        }),
        _ => None,
    };
    let bucket = match (tokens, tokens_at) {
        (Some(tokens), Some(at)) => Some(TokenBucket { tokens, at }),
        _ => None,
    };
    Ok((rate, bucket))
}

fn from_row(row: &Row<'_>) -> QResult<QueueRow> {
    let (rate, bucket) = rate_at(row, 2)?;
    let defaults: Option<String> = row.get(7)?;
    let defaults: JobDefaults = match defaults {
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| Fault::Store(StoreError::Corrupt(format!("queue defaults: {e}"))))?,
        None => JobDefaults::default(),
    };
    Ok(QueueRow {
        paused: row.get(0)?,
        settings: QueueSettings {
            concurrency: row.get(1)?,
            rate,
            defaults,
        },
        bucket,
        fair: row.get(8)?,
        vtime: row.get(9)?,
    })
}

/// Reads a queue's row, if the queue exists.
pub(crate) fn read(conn: &Connection, name: &str) -> QResult<Option<QueueRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {QUEUE_COLUMNS} FROM queues WHERE name = ?1"
    ))?;
    let mut rows = stmt.query([name])?;
    match rows.next()? {
        Some(row) => from_row(row).map(Some),
        None => Ok(None),
    }
}

/// Applies a settings patch (validated), creating the queue when missing. A changed rate
/// refills the bucket.
pub(crate) fn update(
    conn: &Connection,
    now: Millis,
    name: &str,
    patch: &QueueSettingsPatch,
) -> QResult<()> {
    patch
        .validate()
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    conn.prepare_cached(
        "INSERT INTO queues (name, paused, created_at) VALUES (?1, 0, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![name, now])?;
    let old = read(conn, name)?.unwrap_or_default();
    let new = patch.apply_to(&old.settings);
    let bucket = if new.rate == old.settings.rate {
        old.bucket
    } else {
        None
    };
    let defaults = if new.defaults == JobDefaults::default() {
        None
    } else {
        Some(
            serde_json::to_string(&new.defaults)
                .map_err(|e| Fault::Store(StoreError::Internal(e.to_string())))?,
        )
    };
    conn.prepare_cached(
        "UPDATE queues SET paused = COALESCE(?2, paused), concurrency = ?3, rate_limit = ?4, \
         rate_period_ms = ?5, rate_burst = ?6, tokens = ?7, tokens_at = ?8, defaults = ?9 \
         WHERE name = ?1",
    )?
    .execute(params![
        name,
        patch.paused,
        new.concurrency,
        new.rate.map(|r| r.limit),
        new.rate.map(|r| r.period_ms as i64),
        new.rate.and_then(|r| r.burst),
        bucket.map(|b| b.tokens),
        bucket.map(|b| b.at),
        defaults,
    ])?;
    Ok(())
}

/// Stores a queue's bucket after a claim drew from it.
pub(crate) fn save_bucket(conn: &Connection, name: &str, b: &TokenBucket) -> QResult<()> {
    conn.prepare_cached("UPDATE queues SET tokens = ?2, tokens_at = ?3 WHERE name = ?1")?
        .execute(params![name, b.tokens, b.at])?;
    Ok(())
}

/// Whether any kind or rate-key limit exists (claims take the fast path when none does
/// and the queue has no limits of its own).
pub(crate) fn any_limits(conn: &Connection) -> QResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM limits LIMIT 1")?
        .query_row([], |_| Ok(()))
        .optional()?
        .is_some())
}
