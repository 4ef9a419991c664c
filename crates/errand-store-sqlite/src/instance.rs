//! Records of continuous instances, shared by every node.

use errand_core::time::{to_millis, to_timestamp};
use errand_core::{InstanceRecord, InstanceState, Millis, NodeId};
use errand_store::StoreError;
use rusqlite::{params, Connection, Row};
use uuid::Uuid;

use crate::fault::{Fault, QResult};

fn corrupt(what: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(what.to_string()))
}

/// Creates or replaces a record; `updated_at` is `now`.
pub(crate) fn put(conn: &Connection, now: Millis, r: &InstanceRecord) -> QResult<()> {
    let last_exit = r
        .last_exit
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO instances (node, instance, definition, pid, state, since, restarts, last_exit, \
             last_exit_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (node, instance) DO UPDATE SET definition = excluded.definition, \
             pid = excluded.pid, state = excluded.state, since = excluded.since, \
             restarts = excluded.restarts, last_exit = excluded.last_exit, \
             last_exit_at = excluded.last_exit_at, updated_at = excluded.updated_at",
    )?
    .execute(params![
        r.node.0.as_bytes().as_slice(),
        r.instance.as_bytes().as_slice(),
        r.definition,
        r.pid,
        r.state.as_str(),
        to_millis(r.since),
        r.restarts,
        last_exit,
        r.last_exit_at.map(to_millis),
        now
    ])?;
    Ok(())
}

fn from_row(row: &Row<'_>) -> QResult<InstanceRecord> {
    let node: Vec<u8> = row.get(0)?;
    let instance: Vec<u8> = row.get(1)?;
    let state: String = row.get(4)?;
    let last_exit: Option<String> = row.get(7)?;
    Ok(InstanceRecord {
        node: NodeId(Uuid::from_slice(&node).map_err(corrupt)?),
        instance: Uuid::from_slice(&instance).map_err(corrupt)?,
        definition: row.get(2)?,
        pid: row.get(3)?,
        state: InstanceState::from_stored(&state).map_err(corrupt)?,
        since: to_timestamp(row.get(5)?),
        restarts: row.get(6)?,
        last_exit: last_exit
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(corrupt)?,
        last_exit_at: row.get::<_, Option<Millis>>(8)?.map(to_timestamp),
        updated_at: to_timestamp(row.get(9)?),
    })
}

/// The records of one definition, or all, by definition, node, instance.
pub(crate) fn list(conn: &Connection, definition: Option<&str>) -> QResult<Vec<InstanceRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT node, instance, definition, pid, state, since, restarts, last_exit, last_exit_at, \
             updated_at FROM instances WHERE ?1 IS NULL OR definition = ?1 \
         ORDER BY definition, node, instance",
    )?;
    let mut rows = stmt.query([definition])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Forgets one record.
pub(crate) fn delete(conn: &Connection, node: NodeId, instance: Uuid) -> QResult<()> {
    conn.prepare_cached("DELETE FROM instances WHERE node = ?1 AND instance = ?2")?
        .execute(params![
            node.0.as_bytes().as_slice(),
            instance.as_bytes().as_slice()
        ])?;
    Ok(())
}

/// Deletes records not updated since `now - stale_after_ms`.
pub(crate) fn prune(conn: &Connection, now: Millis, stale_after_ms: Millis) -> QResult<u64> {
    let n = conn
        .prepare_cached("DELETE FROM instances WHERE updated_at < ?1")?
        .execute([now.saturating_sub(stale_after_ms)])?;
    Ok(n as u64)
}
