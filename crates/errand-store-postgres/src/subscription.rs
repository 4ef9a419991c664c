//! Subscriptions: URLs that receive matching events.

use deadpool_postgres::GenericClient;
use errand_core::time::to_timestamp;
use errand_core::{
    EventType, JobKind, NewSubscription, QueueName, Subscription, SubscriptionId,
    SubscriptionPatch, SubscriptionState,
};
use errand_store::StoreError;
use tokio_postgres::Row;

use crate::fault::{corrupt, Fault, QResult, RowExt};

const COLUMNS: &str = "id, url, events, queue, kind, tag, description, state, paused_reason, \
     consecutive_failures, created_at, updated_at";

/// The refusal for a subscription that does not exist.
fn not_found(id: SubscriptionId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("subscription {id}"),
    })
}

fn from_row(row: &Row) -> QResult<Subscription> {
    let events: Vec<String> = row.column(2)?;
    let queue: Option<String> = row.column(3)?;
    let kind: Option<String> = row.column(4)?;
    let state: String = row.column(7)?;
    let failures: i32 = row.column(9)?;
    Ok(Subscription {
        id: SubscriptionId(row.column(0)?),
        url: row.column(1)?,
        events: events
            .iter()
            .map(|e| e.parse::<EventType>())
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        queue: queue
            .as_deref()
            .map(QueueName::parse)
            .transpose()
            .map_err(corrupt)?,
        kind: kind
            .as_deref()
            .map(JobKind::parse)
            .transpose()
            .map_err(corrupt)?,
        tag: row.column(5)?,
        description: row.column(6)?,
        state: SubscriptionState::from_stored(&state).map_err(corrupt)?,
        paused_reason: row.column(8)?,
        consecutive_failures: u32::try_from(failures).map_err(corrupt)?,
        created_at: to_timestamp(row.column(10)?),
        updated_at: to_timestamp(row.column(11)?),
    })
}

fn event_names(events: &[EventType]) -> Vec<&'static str> {
    events.iter().map(|e| e.as_str()).collect()
}

/// Creates a subscription, active, created now.
pub(crate) async fn create(
    client: &impl GenericClient,
    new: &NewSubscription,
) -> QResult<Subscription> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO subscriptions (id, url, events, queue, kind, tag, description, state, \
                 paused_reason, consecutive_failures, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', NULL, 0, errand_now(), errand_now()) \
             RETURNING {COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &new.id.0,
                &new.url,
                &event_names(&new.events),
                &new.queue.as_ref().map(QueueName::as_str),
                &new.kind.as_ref().map(JobKind::as_str),
                &new.tag,
                &new.description,
            ],
        )
        .await?;
    from_row(&row)
}

async fn get_with(
    client: &impl GenericClient,
    id: SubscriptionId,
    lock: &str,
) -> QResult<Subscription> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE id = $1{lock}"
        ))
        .await?;
    match client.query_opt(&stmt, &[&id.0]).await? {
        Some(row) => from_row(&row),
        None => Err(not_found(id)),
    }
}

/// One subscription; `NotFound` when missing.
pub(crate) async fn get(client: &impl GenericClient, id: SubscriptionId) -> QResult<Subscription> {
    get_with(client, id, "").await
}

/// Every subscription, oldest first.
pub(crate) async fn list(client: &impl GenericClient) -> QResult<Vec<Subscription>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM subscriptions ORDER BY created_at, id"
        ))
        .await?;
    client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Applies `patch` (see [`SubscriptionPatch::apply_to`]) and stamps `updated_at`, inside
/// the caller's transaction (the row is locked between the read and the write).
pub(crate) async fn update(
    client: &impl GenericClient,
    id: SubscriptionId,
    patch: SubscriptionPatch,
) -> QResult<Subscription> {
    let mut sub = get_with(client, id, " FOR UPDATE").await?;
    let old_url = sub.url.clone();
    patch.apply_to(&mut sub);
    if sub.url != old_url {
        // Deliveries still waiting follow the subscription to its new URL.
        let moved = client
            .prepare_cached(
                "UPDATE deliveries SET url = $2 WHERE subscription_id = $1 AND state = 'pending'",
            )
            .await?;
        client.execute(&moved, &[&id.0, &sub.url]).await?;
    }
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE subscriptions SET url = $2, events = $3, queue = $4, kind = $5, tag = $6, \
                 description = $7, state = $8, paused_reason = $9, consecutive_failures = $10, \
                 updated_at = errand_now() \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .await?;
    let failures = i32::try_from(sub.consecutive_failures).unwrap_or(i32::MAX);
    let row = client
        .query_one(
            &stmt,
            &[
                &id.0,
                &sub.url,
                &event_names(&sub.events),
                &sub.queue.as_ref().map(QueueName::as_str),
                &sub.kind.as_ref().map(JobKind::as_str),
                &sub.tag,
                &sub.description,
                &sub.state.as_str(),
                &sub.paused_reason,
                &failures,
            ],
        )
        .await?;
    from_row(&row)
}

/// Deletes a subscription with its pending deliveries and their attempts, in one
/// statement; its finished deliveries stay until pruned.
pub(crate) async fn delete(client: &impl GenericClient, id: SubscriptionId) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "WITH s AS (DELETE FROM subscriptions WHERE id = $1 RETURNING id), \
             d AS (DELETE FROM deliveries \
                   WHERE subscription_id = $1 AND state = 'pending' AND EXISTS (SELECT 1 FROM s) \
                   RETURNING id), \
             a AS (DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM d)) \
             SELECT count(*) FROM s",
        )
        .await?;
    let n: i64 = client.query_one(&stmt, &[&id.0]).await?.column(0)?;
    if n == 0 {
        return Err(not_found(id));
    }
    Ok(())
}
