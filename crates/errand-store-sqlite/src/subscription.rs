//! Subscriptions: URLs that receive matching events.

use errand_core::time::to_timestamp;
use errand_core::{
    EventType, JobKind, Millis, NewSubscription, QueueName, Subscription, SubscriptionId,
    SubscriptionPatch, SubscriptionState,
};
use errand_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::fault::{Fault, QResult};

const COLUMNS: &str = "id, url, events, queue, kind, tag, description, state, paused_reason, \
     consecutive_failures, created_at, updated_at";

fn corrupt(what: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(what.to_string()))
}

/// The refusal for a subscription that does not exist.
pub(crate) fn not_found(id: SubscriptionId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("subscription {id}"),
    })
}

fn from_row(row: &Row<'_>) -> QResult<Subscription> {
    let id: Vec<u8> = row.get(0)?;
    let events: String = row.get(2)?;
    let queue: Option<String> = row.get(3)?;
    let kind: Option<String> = row.get(4)?;
    let state: String = row.get(7)?;
    Ok(Subscription {
        id: SubscriptionId::from_slice(&id)
            .ok_or_else(|| corrupt("subscription id is not 16 bytes"))?,
        url: row.get(1)?,
        events: serde_json::from_str::<Vec<EventType>>(&events).map_err(corrupt)?,
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
        tag: row.get(5)?,
        description: row.get(6)?,
        state: SubscriptionState::from_stored(&state).map_err(corrupt)?,
        paused_reason: row.get(8)?,
        consecutive_failures: row.get(9)?,
        created_at: to_timestamp(row.get(10)?),
        updated_at: to_timestamp(row.get(11)?),
    })
}

fn events_text(events: &[EventType]) -> QResult<String> {
    serde_json::to_string(events)
        .map_err(|e| Fault::Store(StoreError::Internal(format!("event types as JSON: {e}"))))
}

/// Creates a subscription, active, created now.
pub(crate) fn create(
    conn: &Connection,
    now: Millis,
    new: &NewSubscription,
) -> QResult<Subscription> {
    conn.prepare_cached(
        "INSERT INTO subscriptions (id, url, events, queue, kind, tag, description, state, \
             paused_reason, consecutive_failures, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active', NULL, 0, ?8, ?8)",
    )?
    .execute(params![
        new.id.as_bytes().as_slice(),
        new.url,
        events_text(&new.events)?,
        new.queue.as_ref().map(QueueName::as_str),
        new.kind.as_ref().map(JobKind::as_str),
        new.tag,
        new.description,
        now,
    ])?;
    get(conn, new.id)
}

/// One subscription; `NotFound` when missing.
pub(crate) fn get(conn: &Connection, id: SubscriptionId) -> QResult<Subscription> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE id = ?1"
    ))?
    .query_row([id.as_bytes().as_slice()], |row| Ok(from_row(row)))
    .optional()?
    .ok_or_else(|| not_found(id))?
}

/// Every subscription, oldest first.
pub(crate) fn list(conn: &Connection) -> QResult<Vec<Subscription>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscriptions ORDER BY created_at, id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Applies `patch` (see [`SubscriptionPatch::apply_to`]) and stamps `updated_at`.
pub(crate) fn update(
    conn: &Connection,
    now: Millis,
    id: SubscriptionId,
    patch: SubscriptionPatch,
) -> QResult<Subscription> {
    let mut sub = get(conn, id)?;
    let old_url = sub.url.clone();
    patch.apply_to(&mut sub);
    if sub.url != old_url {
        // Deliveries still waiting follow the subscription to its new URL.
        conn.prepare_cached(
            "UPDATE deliveries SET url = ?2 WHERE subscription_id = ?1 AND state = 'pending'",
        )?
        .execute(params![id.as_bytes().as_slice(), sub.url])?;
    }
    conn.prepare_cached(
        "UPDATE subscriptions SET url = ?2, events = ?3, queue = ?4, kind = ?5, tag = ?6, \
             description = ?7, state = ?8, paused_reason = ?9, consecutive_failures = ?10, \
             updated_at = ?11 \
         WHERE id = ?1",
    )?
    .execute(params![
        id.as_bytes().as_slice(),
        sub.url,
        events_text(&sub.events)?,
        sub.queue.as_ref().map(QueueName::as_str),
        sub.kind.as_ref().map(JobKind::as_str),
        sub.tag,
        sub.description,
        sub.state.as_str(),
        sub.paused_reason,
        sub.consecutive_failures,
        now,
    ])?;
    get(conn, id)
}

/// Deletes a subscription with its pending deliveries and their attempts; its finished
/// deliveries stay until pruned.
pub(crate) fn delete(conn: &Connection, id: SubscriptionId) -> QResult<()> {
    let key = id.as_bytes().as_slice();
    let n = conn
        .prepare_cached("DELETE FROM subscriptions WHERE id = ?1")?
        .execute([key])?;
    if n == 0 {
        return Err(not_found(id));
    }
    conn.prepare_cached(
        "DELETE FROM delivery_attempts WHERE delivery_id IN ( \
             SELECT id FROM deliveries WHERE subscription_id = ?1 AND state = 'pending')",
    )?
    .execute([key])?;
    conn.prepare_cached("DELETE FROM deliveries WHERE subscription_id = ?1 AND state = 'pending'")?
        .execute([key])?;
    Ok(())
}
