//! Recording deliveries owed: job callbacks (written with the job's end) and the
//! subscription fan-out both insert through here, so a delivery starts the same way
//! whoever owes it.

use errand_core::{Millis, NewDelivery};
use rusqlite::{params, Connection};

use crate::fault::QResult;

/// Inserts `deliveries` as pending, with no attempt made and the first attempt due at
/// `now`, inside the caller's write.
pub(crate) fn insert_deliveries(
    conn: &Connection,
    now: Millis,
    deliveries: &[NewDelivery],
) -> QResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO deliveries (id, subscription_id, job_id, event_type, url, body, state, \
             attempts, next_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7, ?7)",
    )?;
    for d in deliveries {
        stmt.execute(params![
            d.id.as_bytes().as_slice(),
            d.subscription.as_ref().map(|s| s.as_bytes().as_slice()),
            d.job.as_ref().map(|j| j.as_bytes().as_slice()),
            d.event_type.as_str(),
            d.url,
            d.body,
            now,
        ])?;
    }
    Ok(())
}
