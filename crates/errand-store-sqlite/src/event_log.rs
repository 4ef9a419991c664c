//! Reading and pruning the event log. The single writer commits in order, so an event's row
//! id is its place in commit order: its [`EventId`] is `id-id`.

use errand_core::{Event, EventBody, EventId, Millis};
use errand_store::{EventPage, EventPruneParams, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::fault::{Fault, QResult};

/// The cursor that remembers the newest event pruned.
const PRUNED_THROUGH: &str = "pruned_through";

fn row_id(id: i64) -> EventId {
    let n = u64::try_from(id).unwrap_or(0);
    EventId { tx: n, seq: n }
}

fn stored_id(id: EventId) -> i64 {
    i64::try_from(id.tx).unwrap_or(i64::MAX)
}

fn pruned_through(conn: &Connection) -> QResult<Option<EventId>> {
    Ok(conn
        .prepare_cached("SELECT tx FROM event_cursors WHERE name = ?1")?
        .query_row([PRUNED_THROUGH], |r| r.get::<_, i64>(0))
        .optional()?
        .map(row_id))
}

/// Up to `limit` events after `after`, oldest first, with the gap a pruned cursor fell into.
pub(crate) fn read(conn: &Connection, after: Option<EventId>, limit: u32) -> QResult<EventPage> {
    // One read snapshot for the cursor and the events: a prune committed between the two
    // reads would otherwise open a gap nobody is told about.
    let snapshot = conn.unchecked_transaction()?;
    let pruned = pruned_through(conn)?;
    let missed_through = match (after, pruned) {
        (Some(a), Some(p)) if a < p => Some(p),
        _ => None,
    };
    let from = after.map_or(0, stored_id);
    let mut stmt =
        conn.prepare_cached("SELECT id, data FROM events WHERE id > ?1 ORDER BY id LIMIT +?2")?;
    let mut rows = stmt.query(params![from, limit])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let data: String = row.get(1)?;
        let body: EventBody = serde_json::from_str(&data)
            .map_err(|e| Fault::Store(StoreError::Corrupt(format!("event data: {e}"))))?;
        events.push(Event {
            id: row_id(row.get(0)?),
            body,
        });
    }
    drop(rows);
    drop(stmt);
    snapshot.commit()?;
    Ok(EventPage {
        events,
        missed_through,
    })
}

/// The newest event's id.
pub(crate) fn head(conn: &Connection) -> QResult<Option<EventId>> {
    Ok(conn
        .prepare_cached("SELECT MAX(id) FROM events")?
        .query_row([], |r| r.get::<_, Option<i64>>(0))?
        .map(row_id))
}

/// Deletes the oldest events that are past the age or beyond the count, never past
/// `keep_after`, at most `limit`; records the newest deleted id.
pub(crate) fn prune(conn: &Connection, now: Millis, p: &EventPruneParams) -> QResult<u64> {
    let cutoff = now.saturating_sub(i64::try_from(p.older_than.as_millis()).unwrap_or(i64::MAX));
    let offset = i64::try_from(p.keep_at_most).unwrap_or(i64::MAX);
    // Events up to this id are beyond the newest `keep_at_most`.
    let beyond_count: Option<i64> = conn
        .prepare_cached("SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET +?1")?
        .query_row([offset], |r| r.get(0))
        .optional()?;
    let keep_after = p.keep_after.map_or(i64::MAX, stored_id);
    // Only a prefix of the log goes, so a reader's cursor is either before the gap (and
    // told so) or after it: never beside a hole.
    let mut stmt =
        conn.prepare_cached("SELECT id, at FROM events WHERE id <= ?1 ORDER BY id LIMIT +?2")?;
    let mut rows = stmt.query(params![keep_after, p.limit])?;
    let mut last = None;
    let mut n = 0u64;
    while let Some(row) = rows.next()? {
        let (id, at): (i64, Millis) = (row.get(0)?, row.get(1)?);
        if at >= cutoff && beyond_count.is_none_or(|b| id > b) {
            break;
        }
        last = Some(id);
        n += 1;
    }
    drop(rows);
    let Some(last) = last else {
        return Ok(0);
    };
    conn.prepare_cached("DELETE FROM events WHERE id <= ?1")?
        .execute([last])?;
    conn.prepare_cached(
        "INSERT INTO event_cursors (name, tx, seq) VALUES (?1, ?2, ?2) \
         ON CONFLICT (name) DO UPDATE SET tx = MAX(tx, excluded.tx), seq = MAX(seq, excluded.seq)",
    )?
    .execute(params![PRUNED_THROUGH, last])?;
    Ok(n)
}
