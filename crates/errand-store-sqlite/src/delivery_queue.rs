//! Deliveries: the fan-out cursor, claiming due deliveries, settling an attempt (and the
//! subscription's failure count with it), listing and pruning.

use errand_core::delivery::failure_pause_reason;
use errand_core::time::to_timestamp;
use errand_core::{
    ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryId, DeliveryState, EventId, EventType,
    JobId, LeaseToken, Millis, SubscriptionId,
};
use errand_store::{
    DeliveryClaimParams, DeliveryFanoutParams, DeliveryListParams, DeliveryOutcome,
    DeliverySettleParams, StoreError,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::delivery_record::insert_deliveries;
use crate::fault::{Fault, QResult};

/// The name of the fan-out's row in `event_cursors`.
const FANOUT: &str = "fanout";

/// The columns [`delivery_from_row`] reads, in its order.
const COLUMNS: &str = "id, subscription_id, job_id, event_type, url, state, attempts, next_at, \
     last_error, created_at, updated_at";

fn corrupt(what: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(what.to_string()))
}

fn millis_of(d: std::time::Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn not_found(id: DeliveryId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("delivery {id}"),
    })
}

fn id_column<T>(row: &Row<'_>, idx: usize, read: fn(&[u8]) -> Option<T>) -> QResult<Option<T>> {
    let bytes: Option<Vec<u8>> = row.get(idx)?;
    bytes
        .map(|b| read(&b).ok_or_else(|| corrupt(format!("column {idx} is not a 16-byte id"))))
        .transpose()
}

/// Builds a delivery (without its history) from a row selected with [`COLUMNS`].
fn delivery_from_row(row: &Row<'_>) -> QResult<Delivery> {
    let event_type: String = row.get(3)?;
    let state: String = row.get(5)?;
    let state = DeliveryState::from_stored(&state).map_err(corrupt)?;
    let next_at: Millis = row.get(7)?;
    Ok(Delivery {
        id: id_column(row, 0, DeliveryId::from_slice)?
            .ok_or_else(|| corrupt("delivery without an id"))?,
        subscription: id_column(row, 1, SubscriptionId::from_slice)?,
        job: id_column(row, 2, JobId::from_slice)?,
        event_type: event_type.parse::<EventType>().map_err(corrupt)?,
        url: row.get(4)?,
        state,
        attempts: row.get(6)?,
        next_at: (state == DeliveryState::Pending).then(|| to_timestamp(next_at)),
        last_error: row.get(8)?,
        created_at: to_timestamp(row.get(9)?),
        updated_at: to_timestamp(row.get(10)?),
        history: Vec::new(),
    })
}

/// Fills in each delivery's attempts, first first.
fn attach_history(conn: &Connection, deliveries: &mut [Delivery]) -> QResult<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, at, duration_ms, status, error, response FROM delivery_attempts \
         WHERE delivery_id = ?1 ORDER BY attempt",
    )?;
    for d in deliveries {
        let mut rows = stmt.query([d.id.as_bytes().as_slice()])?;
        while let Some(row) = rows.next()? {
            let duration: i64 = row.get(2)?;
            d.history.push(DeliveryAttempt {
                attempt: row.get(0)?,
                at: to_timestamp(row.get(1)?),
                duration_ms: u64::try_from(duration).map_err(corrupt)?,
                status: row.get(3)?,
                error: row.get(4)?,
                response: row.get(5)?,
            });
        }
    }
    Ok(())
}

/// One delivery with its history; `NotFound` when missing.
fn load(conn: &Connection, id: DeliveryId) -> QResult<Delivery> {
    let mut one = vec![conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM deliveries WHERE id = ?1"))?
        .query_row([id.as_bytes().as_slice()], |row| Ok(delivery_from_row(row)))
        .optional()?
        .ok_or_else(|| not_found(id))??];
    attach_history(conn, &mut one)?;
    Ok(one.remove(0))
}

fn cursor_part(v: u64) -> QResult<i64> {
    i64::try_from(v).map_err(|_| {
        Fault::Store(StoreError::Invalid(format!(
            "event cursor part {v} is too large"
        )))
    })
}

/// Where the fan-out has read to.
pub(crate) fn cursor(conn: &Connection) -> QResult<Option<EventId>> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT tx, seq FROM event_cursors WHERE name = ?1")?
        .query_row([FANOUT], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(tx, seq)| {
        Ok(EventId {
            tx: u64::try_from(tx).map_err(corrupt)?,
            seq: u64::try_from(seq).map_err(corrupt)?,
        })
    })
    .transpose()
}

/// Records the stretch's deliveries and moves the cursor, only if it is still at `from`.
pub(crate) fn fanout(conn: &Connection, now: Millis, p: &DeliveryFanoutParams) -> QResult<bool> {
    if cursor(conn)? != p.from {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO event_cursors (name, tx, seq) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET tx = excluded.tx, seq = excluded.seq",
    )?
    .execute(params![
        FANOUT,
        cursor_part(p.to.tx)?,
        cursor_part(p.to.seq)?
    ])?;
    insert_deliveries(conn, now, &p.deliveries)?;
    Ok(true)
}

/// Leases up to `max` due deliveries, oldest due first, skipping those whose subscription
/// is paused or gone.
pub(crate) fn claim(
    conn: &Connection,
    now: Millis,
    p: &DeliveryClaimParams,
) -> QResult<Vec<ClaimedDelivery>> {
    let ids: Vec<Vec<u8>> = {
        let mut stmt = conn.prepare_cached(
            "SELECT d.id FROM deliveries d \
             WHERE d.state = 'pending' AND d.next_at <= ?1 \
               AND (d.subscription_id IS NULL OR EXISTS ( \
                   SELECT 1 FROM subscriptions s \
                   WHERE s.id = d.subscription_id AND s.state = 'active')) \
             ORDER BY d.next_at, d.id LIMIT +?2",
        )?;
        let rows = stmt.query_map(params![now, i64::from(p.max)], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let until = now.saturating_add(millis_of(p.lease));
    let mut update = conn.prepare_cached(
        "UPDATE deliveries SET lease_token = ?2, next_at = ?3, attempts = attempts + 1, \
             updated_at = ?4 \
         WHERE id = ?1",
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let token = LeaseToken::new();
        update.execute(params![id, token.as_bytes().as_slice(), until, now])?;
        let id = DeliveryId::from_slice(&id).ok_or_else(|| corrupt("delivery id"))?;
        let body: String = conn
            .prepare_cached("SELECT body FROM deliveries WHERE id = ?1")?
            .query_row([id.as_bytes().as_slice()], |r| r.get(0))?;
        out.push(ClaimedDelivery {
            delivery: load(conn, id)?,
            body,
            lease_token: token,
        });
    }
    Ok(out)
}

/// What a settle checks before writing: the subscription, state, lease token and attempt
/// count of the delivery.
type Fence = (Option<Vec<u8>>, String, Option<Vec<u8>>, u32);

/// Records an attempt and its outcome, fenced on the claim's token, and keeps the
/// subscription's failure count.
pub(crate) fn settle(
    conn: &Connection,
    now: Millis,
    p: &DeliverySettleParams,
) -> QResult<Delivery> {
    let key = p.id.as_bytes().as_slice();
    let row: Option<Fence> = conn
        .prepare_cached(
            "SELECT subscription_id, state, lease_token, attempts FROM deliveries WHERE id = ?1",
        )?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((subscription, state, token, attempts)) = row else {
        return Err(not_found(p.id));
    };
    if state != DeliveryState::Pending.as_str()
        || token.as_deref() != Some(p.lease_token.as_bytes().as_slice())
    {
        return Err(Fault::Store(StoreError::LeaseLost {
            job: format!("delivery {}", p.id),
        }));
    }
    let a = &p.attempt;
    let duration = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO delivery_attempts (delivery_id, attempt, at, duration_ms, status, error, \
             response) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        key,
        attempts,
        errand_core::time::to_millis(a.at),
        duration,
        a.status,
        a.error,
        a.response,
    ])?;
    let failure = a.failure_text();
    let (state, next_at, last_error) = match &p.outcome {
        DeliveryOutcome::Delivered => (DeliveryState::Succeeded, now, None),
        DeliveryOutcome::RetryIn(d) => (
            DeliveryState::Pending,
            now.saturating_add(millis_of(*d)),
            Some(failure.as_str()),
        ),
        DeliveryOutcome::GiveUp => (DeliveryState::Failed, now, Some(failure.as_str())),
    };
    conn.prepare_cached(
        "UPDATE deliveries SET state = ?2, next_at = ?3, last_error = ?4, lease_token = NULL, \
             updated_at = ?5 \
         WHERE id = ?1",
    )?
    .execute(params![key, state.as_str(), next_at, last_error, now])?;
    if let Some(sub) = subscription {
        if p.outcome == DeliveryOutcome::Delivered {
            conn.prepare_cached(
                "UPDATE subscriptions SET consecutive_failures = 0 \
                 WHERE id = ?1 AND consecutive_failures <> 0",
            )?
            .execute([&sub])?;
        } else {
            count_failure(conn, now, &sub, p.pause_after_failures, &failure)?;
        }
    }
    load(conn, p.id)
}

/// Adds a failure to a subscription's count, pausing it when the count reaches
/// `pause_after` (0: never). A subscription already paused keeps its reason.
fn count_failure(
    conn: &Connection,
    now: Millis,
    sub: &[u8],
    pause_after: u32,
    failure: &str,
) -> QResult<()> {
    let failures: Option<u32> = conn
        .prepare_cached(
            "UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1 \
             WHERE id = ?1 RETURNING consecutive_failures",
        )?
        .query_row([sub], |r| r.get(0))
        .optional()?;
    if let Some(n) = failures.filter(|n| pause_after > 0 && *n >= pause_after) {
        conn.prepare_cached(
            "UPDATE subscriptions SET state = 'paused', paused_reason = ?2, updated_at = ?3 \
             WHERE id = ?1 AND state = 'active'",
        )?
        .execute(params![sub, failure_pause_reason(n, failure), now])?;
    }
    Ok(())
}

/// A page of deliveries with their attempts, newest first.
pub(crate) fn list(conn: &Connection, p: &DeliveryListParams) -> QResult<Vec<Delivery>> {
    let mut sql = format!("SELECT {COLUMNS} FROM deliveries WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(job) = p.job {
        args.push(SqlValue::Blob(job.as_bytes().to_vec()));
        sql.push_str(&format!(" AND job_id = ?{}", args.len()));
    }
    if let Some(sub) = p.subscription {
        args.push(SqlValue::Blob(sub.as_bytes().to_vec()));
        sql.push_str(&format!(" AND subscription_id = ?{}", args.len()));
    }
    if let Some(before) = p.before {
        args.push(SqlValue::Blob(before.as_bytes().to_vec()));
        sql.push_str(&format!(" AND id < ?{}", args.len()));
    }
    args.push(SqlValue::Integer(i64::from(p.limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT +?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(delivery_from_row(row)?);
    }
    drop(rows);
    attach_history(conn, &mut out)?;
    Ok(out)
}

/// Deletes up to `limit` finished deliveries last changed before `now - older_than_ms`,
/// with their attempts.
pub(crate) fn prune(
    conn: &Connection,
    now: Millis,
    older_than_ms: Millis,
    limit: u32,
) -> QResult<u64> {
    let ids: Vec<Vec<u8>> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM deliveries WHERE (state <> 'pending' AND updated_at < ?1) \
                OR (state = 'pending' AND subscription_id IS NOT NULL AND NOT EXISTS \
                    (SELECT 1 FROM subscriptions s WHERE s.id = deliveries.subscription_id)) \
             ORDER BY updated_at LIMIT +?2",
        )?;
        let rows = stmt.query_map(
            params![now.saturating_sub(older_than_ms), i64::from(limit)],
            |r| r.get(0),
        )?;
        rows.collect::<Result<_, _>>()?
    };
    let mut attempts =
        conn.prepare_cached("DELETE FROM delivery_attempts WHERE delivery_id = ?1")?;
    let mut deliveries = conn.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?;
    let mut n = 0u64;
    for id in &ids {
        attempts.execute([id])?;
        n += deliveries.execute([id])? as u64;
    }
    Ok(n)
}
