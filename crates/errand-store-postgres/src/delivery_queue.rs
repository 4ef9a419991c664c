//! Deliveries: the fan-out cursor, claiming due deliveries (`SKIP LOCKED`, so two nodes
//! never send the same one), settling an attempt (and the subscription's failure count with
//! it), listing and pruning.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use errand_core::delivery::failure_pause_reason;
use errand_core::time::{to_millis, to_timestamp};
use errand_core::{
    ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryId, DeliveryState, EventId, EventType,
    JobId, LeaseToken, Millis, SubscriptionId,
};
use errand_store::{
    DeliveryClaimParams, DeliveryFanoutParams, DeliveryListParams, DeliveryOutcome,
    DeliverySettleParams, StoreError,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::delivery_record::insert_deliveries;
use crate::fault::{corrupt, Fault, QResult, RowExt};
use crate::job_row::millis;

/// The name of the fan-out's row in `event_cursors`.
const FANOUT: &str = "fanout";

/// The columns [`delivery_from_row`] reads, in its order.
const COLUMNS: &str = "id, subscription_id, job_id, event_type, url, state, attempts, next_at, \
     last_error, created_at, updated_at";

/// [`COLUMNS`] qualified by a table alias.
fn columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_found(id: DeliveryId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("delivery {id}"),
    })
}

/// Builds a delivery (without its history) from a row whose columns from `at` on are
/// [`COLUMNS`].
fn delivery_from_row(row: &Row, at: usize) -> QResult<Delivery> {
    let event_type: String = row.column(at + 3)?;
    let state: String = row.column(at + 5)?;
    let state = DeliveryState::from_stored(&state).map_err(corrupt)?;
    let attempts: i32 = row.column(at + 6)?;
    let next_at: Millis = row.column(at + 7)?;
    Ok(Delivery {
        id: DeliveryId(row.column(at)?),
        subscription: row.column::<Option<Uuid>>(at + 1)?.map(SubscriptionId),
        job: row.column::<Option<Uuid>>(at + 2)?.map(JobId),
        event_type: event_type.parse::<EventType>().map_err(corrupt)?,
        url: row.column(at + 4)?,
        state,
        attempts: u32::try_from(attempts).map_err(corrupt)?,
        next_at: (state == DeliveryState::Pending).then(|| to_timestamp(next_at)),
        last_error: row.column(at + 8)?,
        created_at: to_timestamp(row.column(at + 9)?),
        updated_at: to_timestamp(row.column(at + 10)?),
        history: Vec::new(),
    })
}

/// Fills in each delivery's attempts, first first, with one query.
async fn attach_history(client: &impl GenericClient, deliveries: &mut [Delivery]) -> QResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let stmt = client
        .prepare_cached(
            "SELECT delivery_id, attempt, at, duration_ms, status, error, response \
             FROM delivery_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
        )
        .await?;
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id.0).collect();
    let mut by_id: HashMap<Uuid, Vec<DeliveryAttempt>> = HashMap::new();
    for row in client.query(&stmt, &[&ids]).await? {
        let attempt: i32 = row.column(1)?;
        let duration: i64 = row.column(3)?;
        let status: Option<i32> = row.column(4)?;
        by_id
            .entry(row.column(0)?)
            .or_default()
            .push(DeliveryAttempt {
                attempt: u32::try_from(attempt).map_err(corrupt)?,
                at: to_timestamp(row.column(2)?),
                duration_ms: u64::try_from(duration).map_err(corrupt)?,
                status: status.map(u16::try_from).transpose().map_err(corrupt)?,
                error: row.column(5)?,
                response: row.column(6)?,
            });
    }
    for d in deliveries {
        d.history = by_id.remove(&d.id.0).unwrap_or_default();
    }
    Ok(())
}

/// One delivery with its history; `NotFound` when missing.
async fn load(client: &impl GenericClient, id: DeliveryId) -> QResult<Delivery> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM deliveries WHERE id = $1"))
        .await?;
    let row = client
        .query_opt(&stmt, &[&id.0])
        .await?
        .ok_or_else(|| not_found(id))?;
    let mut one = [delivery_from_row(&row, 0)?];
    attach_history(client, &mut one).await?;
    let [d] = one;
    Ok(d)
}

/// Where the fan-out has read to. `tx` is an `xid8`, read and written as text.
pub(crate) async fn cursor(client: &impl GenericClient) -> QResult<Option<EventId>> {
    let stmt = client
        .prepare_cached("SELECT tx::text, seq FROM event_cursors WHERE name = $1")
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&FANOUT]).await? else {
        return Ok(None);
    };
    let tx: String = row.column(0)?;
    let seq: i64 = row.column(1)?;
    Ok(Some(EventId {
        tx: tx.parse().map_err(corrupt)?,
        seq: u64::try_from(seq).map_err(corrupt)?,
    }))
}

fn seq_param(seq: u64) -> QResult<i64> {
    i64::try_from(seq).map_err(|_| {
        Fault::Store(StoreError::Invalid(format!(
            "event sequence {seq} is too large"
        )))
    })
}

/// Moves the cursor from `from` to `to` and records the stretch's deliveries, inside the
/// caller's transaction; false (nothing written) when the cursor is not at `from`. A
/// concurrent fan-out from the same `from` waits on the cursor row and then finds it moved.
pub(crate) async fn fanout(client: &impl GenericClient, p: &DeliveryFanoutParams) -> QResult<bool> {
    let to_tx = p.to.tx.to_string();
    let to_seq = seq_param(p.to.seq)?;
    let now: Option<Millis> = match p.from {
        None => {
            let stmt = client
                .prepare_cached(
                    "INSERT INTO event_cursors (name, tx, seq) VALUES ($1, $2::text::xid8, $3) \
                     ON CONFLICT (name) DO NOTHING RETURNING errand_now()",
                )
                .await?;
            client.query_opt(&stmt, &[&FANOUT, &to_tx, &to_seq]).await?
        }
        Some(from) => {
            let stmt = client
                .prepare_cached(
                    "UPDATE event_cursors SET tx = $2::text::xid8, seq = $3 \
                     WHERE name = $1 AND tx = $4::text::xid8 AND seq = $5 \
                     RETURNING errand_now()",
                )
                .await?;
            client
                .query_opt(
                    &stmt,
                    &[
                        &FANOUT,
                        &to_tx,
                        &to_seq,
                        &from.tx.to_string(),
                        &seq_param(from.seq)?,
                    ],
                )
                .await?
        }
    }
    .map(|row| row.column(0))
    .transpose()?;
    let Some(now) = now else {
        return Ok(false);
    };
    insert_deliveries(client, now, &p.deliveries).await?;
    Ok(true)
}

/// Leases up to `max` due deliveries in one statement, oldest due first, skipping those
/// whose subscription is paused or gone and those another node is claiming right now.
pub(crate) async fn claim(
    client: &impl GenericClient,
    p: &DeliveryClaimParams,
) -> QResult<Vec<ClaimedDelivery>> {
    let sql = format!(
        "WITH picked AS ( \
             SELECT d.id, d.next_at FROM deliveries d \
             WHERE d.state = 'pending' AND d.next_at <= errand_now() \
               AND (d.subscription_id IS NULL OR EXISTS ( \
                   SELECT 1 FROM subscriptions s \
                   WHERE s.id = d.subscription_id AND s.state = 'active')) \
             ORDER BY d.next_at, d.id LIMIT $1 FOR UPDATE OF d SKIP LOCKED) \
         UPDATE deliveries d SET lease_token = gen_random_uuid(), \
             next_at = errand_now() + $2, attempts = d.attempts + 1, updated_at = errand_now() \
         FROM picked WHERE d.id = picked.id \
         RETURNING picked.next_at, d.body, d.lease_token, {}",
        columns("d")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&stmt, &[&i64::from(p.max), &millis(p.lease)])
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let due: Millis = row.column(0)?;
        claimed.push((
            due,
            ClaimedDelivery {
                body: row.column(1)?,
                lease_token: LeaseToken(row.column(2)?),
                delivery: delivery_from_row(row, 3)?,
            },
        ));
    }
    claimed.sort_by_key(|(due, c)| (*due, c.delivery.id));
    let mut deliveries: Vec<Delivery> = claimed.iter().map(|(_, c)| c.delivery.clone()).collect();
    attach_history(client, &mut deliveries).await?;
    Ok(claimed
        .into_iter()
        .zip(deliveries)
        .map(|((_, c), delivery)| ClaimedDelivery { delivery, ..c })
        .collect())
}

/// Records an attempt and its outcome, fenced on the claim's token, and keeps the
/// subscription's failure count, inside the caller's transaction.
pub(crate) async fn settle(
    client: &impl GenericClient,
    p: &DeliverySettleParams,
) -> QResult<Delivery> {
    let stmt = client
        .prepare_cached(
            "SELECT subscription_id, state, lease_token, attempts FROM deliveries \
             WHERE id = $1 FOR UPDATE",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&p.id.0])
        .await?
        .ok_or_else(|| not_found(p.id))?;
    let subscription: Option<Uuid> = row.column(0)?;
    let state: String = row.column(1)?;
    let token: Option<Uuid> = row.column(2)?;
    let attempts: i32 = row.column(3)?;
    if state != DeliveryState::Pending.as_str() || token != Some(p.lease_token.0) {
        return Err(Fault::Store(StoreError::LeaseLost {
            job: format!("delivery {}", p.id),
        }));
    }
    let a = &p.attempt;
    let duration = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
    let status = a.status.map(i32::from);
    let stmt = client
        .prepare_cached(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, duration_ms, status, error, \
                 response) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &p.id.0,
                &attempts,
                &to_millis(a.at),
                &duration,
                &status,
                &a.error,
                &a.response,
            ],
        )
        .await?;
    let failure = a.failure_text();
    let (state, delay, last_error) = match &p.outcome {
        DeliveryOutcome::Delivered => (DeliveryState::Succeeded, 0, None),
        DeliveryOutcome::RetryIn(d) => (DeliveryState::Pending, millis(*d), Some(&failure)),
        DeliveryOutcome::GiveUp => (DeliveryState::Failed, 0, Some(&failure)),
    };
    let stmt = client
        .prepare_cached(
            "UPDATE deliveries SET state = $2, next_at = errand_now() + $3, last_error = $4, \
                 lease_token = NULL, updated_at = errand_now() \
             WHERE id = $1",
        )
        .await?;
    client
        .execute(&stmt, &[&p.id.0, &state.as_str(), &delay, &last_error])
        .await?;
    if let Some(sub) = subscription {
        if p.outcome == DeliveryOutcome::Delivered {
            let stmt = client
                .prepare_cached(
                    "UPDATE subscriptions SET consecutive_failures = 0 \
                     WHERE id = $1 AND consecutive_failures <> 0",
                )
                .await?;
            client.execute(&stmt, &[&sub]).await?;
        } else {
            count_failure(client, sub, p.pause_after_failures, &failure).await?;
        }
    }
    load(client, p.id).await
}

/// Adds a failure to a subscription's count, pausing it when the count reaches
/// `pause_after` (0: never). A subscription already paused keeps its reason.
async fn count_failure(
    client: &impl GenericClient,
    sub: Uuid,
    pause_after: u32,
    failure: &str,
) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1 \
             WHERE id = $1 RETURNING consecutive_failures",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&sub]).await? else {
        return Ok(());
    };
    let failures = u32::try_from(row.column::<i32>(0)?).map_err(corrupt)?;
    if pause_after > 0 && failures >= pause_after {
        let stmt = client
            .prepare_cached(
                "UPDATE subscriptions SET state = 'paused', paused_reason = $2, \
                     updated_at = errand_now() \
                 WHERE id = $1 AND state = 'active'",
            )
            .await?;
        client
            .execute(&stmt, &[&sub, &failure_pause_reason(failures, failure)])
            .await?;
    }
    Ok(())
}

/// A page of deliveries with their attempts, newest first. Each combination of filters is
/// its own statement, so each gets a plan that uses its index.
pub(crate) async fn list(
    client: &impl GenericClient,
    p: &DeliveryListParams,
) -> QResult<Vec<Delivery>> {
    let mut sql = format!("SELECT {COLUMNS} FROM deliveries WHERE true");
    let job = p.job.map(|j| j.0);
    let sub = p.subscription.map(|s| s.0);
    let before = p.before.map(|b| b.0);
    let limit = i64::from(p.limit);
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(job) = &job {
        args.push(job);
        sql.push_str(&format!(" AND job_id = ${}", args.len()));
    }
    if let Some(sub) = &sub {
        args.push(sub);
        sql.push_str(&format!(" AND subscription_id = ${}", args.len()));
    }
    if let Some(before) = &before {
        args.push(before);
        sql.push_str(&format!(" AND id < ${}", args.len()));
    }
    args.push(&limit);
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
    let stmt = client.prepare_cached(&sql).await?;
    let mut out = client
        .query(&stmt, &args)
        .await?
        .iter()
        .map(|row| delivery_from_row(row, 0))
        .collect::<QResult<Vec<_>>>()?;
    attach_history(client, &mut out).await?;
    Ok(out)
}

/// Deletes up to `limit` finished deliveries last changed more than `older_than_ms` ago,
/// with their attempts, in one statement.
pub(crate) async fn prune(
    client: &impl GenericClient,
    older_than_ms: Millis,
    limit: u32,
) -> QResult<u64> {
    let stmt = client
        .prepare_cached(
            "WITH gone AS ( \
                 DELETE FROM deliveries WHERE id IN ( \
                     SELECT id FROM deliveries \
                     WHERE (state <> 'pending' AND updated_at < errand_now() - $1) \
                        OR (state = 'pending' AND subscription_id IS NOT NULL AND NOT EXISTS \
                            (SELECT 1 FROM subscriptions s WHERE s.id = deliveries.subscription_id)) \
                     ORDER BY updated_at LIMIT $2) \
                 RETURNING id), \
             a AS (DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM gone)) \
             SELECT count(*) FROM gone",
        )
        .await?;
    let n: i64 = client
        .query_one(&stmt, &[&older_than_ms, &i64::from(limit)])
        .await?
        .column(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
