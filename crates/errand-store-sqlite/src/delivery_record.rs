//! Recording webhook deliveries to make (job callbacks, subscription fan-out): pending,
//! due now, in the caller's transaction.

use errand_core::{DeliveryState, Millis, NewDelivery};
use rusqlite::{params, Connection};

use crate::fault::QResult;

/// Inserts `deliveries` as pending, no attempt made, due at `now`.
pub(crate) fn insert_deliveries(
    conn: &Connection,
    now: Millis,
    deliveries: &[NewDelivery],
) -> QResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO deliveries (id, subscription_id, job_id, event_type, url, body, state, \
         attempts, next_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8, ?8)",
    )?;
    for d in deliveries {
        stmt.execute(params![
            d.id.as_bytes().as_slice(),
            d.subscription.as_ref().map(|s| s.as_bytes().as_slice()),
            d.job.as_ref().map(|j| j.as_bytes().as_slice()),
            d.event_type.as_str(),
            d.url,
            d.body,
            DeliveryState::Pending.as_str(),
            now,
        ])?;
    }
    Ok(())
}
