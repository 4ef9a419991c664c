//! Reading and pruning the event log. Events sort by `(tx, seq)`: the writing
//! transaction's id, then the order within it. Sequence numbers are handed out before
//! commit, so only events whose transaction is older than every transaction still running
//! (`pg_snapshot_xmin`) are read: nothing can commit later in front of them, so a reader
//! that moved past an event never misses one that lands before it.

use deadpool_postgres::GenericClient;
use errand_core::{Event, EventBody, EventId};
use errand_store::{EventPage, EventPruneParams, StoreError};
use tokio_postgres::Row;

use crate::fault::{corrupt, Fault, QResult, RowExt};
use crate::job_row::millis;

/// The cursor that remembers the newest event pruned.
const PRUNED_THROUGH: &str = "pruned_through";

/// Only events every reader may see in their final order.
const SETTLED: &str = "tx < pg_snapshot_xmin(pg_current_snapshot())";

fn id_of(row: &Row, tx: usize, seq: usize) -> QResult<EventId> {
    let text: String = row.column(tx)?;
    let seq: i64 = row.column(seq)?;
    Ok(EventId {
        tx: text.parse().map_err(corrupt)?,
        seq: u64::try_from(seq).map_err(corrupt)?,
    })
}

/// An id as the statements take it: the xid as text, the sequence as a bigint.
fn params_of(id: EventId) -> (String, i64) {
    (id.tx.to_string(), i64::try_from(id.seq).unwrap_or(i64::MAX))
}

/// Up to `limit` settled events after `after`, in commit order, with the gap a pruned
/// cursor fell into. One statement, so the cursor and the events come from one snapshot: a
/// prune committed between two reads would otherwise open a gap nobody is told about.
pub(crate) async fn read(
    client: &impl GenericClient,
    after: Option<EventId>,
    limit: u32,
) -> QResult<EventPage> {
    let limit = i64::from(limit);
    let rows = match after {
        Some(a) => {
            let stmt = client
                .prepare_cached(&format!(
                    "(SELECT tx::text, seq, data FROM events \
                      WHERE (tx, seq) > ($1::text::xid8, $2::bigint) AND {SETTLED} \
                      ORDER BY events.tx, events.seq LIMIT $3) \
                     UNION ALL \
                     (SELECT tx::text, seq, NULL FROM event_cursors WHERE name = $4)"
                ))
                .await?;
            let (tx, seq) = params_of(a);
            client
                .query(&stmt, &[&tx, &seq, &limit, &PRUNED_THROUGH])
                .await?
        }
        None => {
            let stmt = client
                .prepare_cached(&format!(
                    "(SELECT tx::text, seq, data FROM events WHERE {SETTLED} \
                      ORDER BY events.tx, events.seq LIMIT $1) \
                     UNION ALL \
                     (SELECT tx::text, seq, NULL FROM event_cursors WHERE name = $2)"
                ))
                .await?;
            client.query(&stmt, &[&limit, &PRUNED_THROUGH]).await?
        }
    };
    let mut events = Vec::with_capacity(rows.len());
    let mut pruned = None;
    for row in &rows {
        let id = id_of(row, 0, 1)?;
        let Some(data) = row.column::<Option<String>>(2)? else {
            pruned = Some(id);
            continue;
        };
        let body: EventBody = serde_json::from_str(&data)
            .map_err(|e| Fault::Store(StoreError::Corrupt(format!("event data: {e}"))))?;
        events.push(Event { id, body });
    }
    let missed_through = match (after, pruned) {
        (Some(a), Some(p)) if a < p => Some(p),
        _ => None,
    };
    Ok(EventPage {
        events,
        missed_through,
    })
}

/// The newest settled event's id.
pub(crate) async fn head(client: &impl GenericClient) -> QResult<Option<EventId>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT tx::text, seq FROM events WHERE {SETTLED} ORDER BY events.tx DESC, events.seq DESC LIMIT 1"
        ))
        .await?;
    client
        .query_opt(&stmt, &[])
        .await?
        .map(|row| id_of(&row, 0, 1))
        .transpose()
}

/// Deletes the oldest settled events that are past the age or beyond the count, never past
/// `keep_after`, at most `limit`, inside the caller's transaction; records the newest
/// deleted id.
pub(crate) async fn prune(client: &impl GenericClient, p: &EventPruneParams) -> QResult<u64> {
    // Settled events up to this one are beyond the newest `keep_at_most`.
    let stmt = client
        .prepare_cached(&format!(
            "SELECT tx::text, seq FROM events WHERE {SETTLED} \
             ORDER BY events.tx DESC, events.seq DESC OFFSET $1 LIMIT 1"
        ))
        .await?;
    let offset = i64::try_from(p.keep_at_most).unwrap_or(i64::MAX);
    let beyond_count = client
        .query_opt(&stmt, &[&offset])
        .await?
        .map(|row| id_of(&row, 0, 1))
        .transpose()?;
    let (keep_tx, keep_seq) = params_of(p.keep_after.unwrap_or(EventId {
        tx: u64::MAX >> 1,
        seq: u64::MAX >> 1,
    }));
    // Only a prefix of the log goes, so a reader's cursor is either before the gap (and
    // told so) or after it: never beside a hole.
    let stmt = client
        .prepare_cached(&format!(
            "SELECT tx::text, seq, at < errand_now() - $3 FROM events \
             WHERE {SETTLED} AND (tx, seq) <= ($1::text::xid8, $2::bigint) \
             ORDER BY events.tx, events.seq LIMIT $4"
        ))
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &keep_tx,
                &keep_seq,
                &millis(p.older_than),
                &i64::from(p.limit),
            ],
        )
        .await?;
    let mut last = None;
    let mut n = 0u64;
    for row in &rows {
        let id = id_of(row, 0, 1)?;
        let old: bool = row.column(2)?;
        if !old && beyond_count.is_none_or(|b| id > b) {
            break;
        }
        last = Some(id);
        n += 1;
    }
    let Some(last) = last else {
        return Ok(0);
    };
    let (tx, seq) = params_of(last);
    let stmt = client
        .prepare_cached("DELETE FROM events WHERE (tx, seq) <= ($1::text::xid8, $2::bigint)")
        .await?;
    client.execute(&stmt, &[&tx, &seq]).await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO event_cursors (name, tx, seq) VALUES ($1, $2::text::xid8, $3) \
             ON CONFLICT (name) DO UPDATE SET tx = excluded.tx, seq = excluded.seq \
             WHERE (event_cursors.tx, event_cursors.seq) < (excluded.tx, excluded.seq)",
        )
        .await?;
    client.execute(&stmt, &[&PRUNED_THROUGH, &tx, &seq]).await?;
    Ok(n)
}
