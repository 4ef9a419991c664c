//! Node registration and listing.

use errand_core::time::to_timestamp;
use errand_core::{Millis, NodeId, NodeInfo, NodeStatus};
use errand_store::{NodeHeartbeatParams, StoreError};
use rusqlite::{params, Connection};
use uuid::Uuid;

use crate::fault::{Fault, QResult};

/// Registers or refreshes a node.
pub(crate) fn heartbeat(conn: &Connection, now: Millis, p: &NodeHeartbeatParams) -> QResult<()> {
    conn.prepare_cached(
        "INSERT INTO nodes (id, host, pid, version, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stopped = 0",
    )?
    .execute(params![p.id.0.as_bytes().as_slice(), p.host, p.pid, p.version, now])?;
    Ok(())
}

/// Marks a node stopped.
pub(crate) fn stop(conn: &Connection, now: Millis, id: NodeId) -> QResult<()> {
    conn.prepare_cached("UPDATE nodes SET stopped = 1, heartbeat_at = ?2 WHERE id = ?1")?
        .execute(params![id.0.as_bytes().as_slice(), now])?;
    Ok(())
}

/// Nodes seen since `now - forget_after_ms`, newest first.
pub(crate) fn list(
    conn: &Connection,
    now: Millis,
    dead_after_ms: Millis,
    forget_after_ms: Millis,
) -> QResult<Vec<NodeInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, host, pid, version, started_at, heartbeat_at, stopped FROM nodes \
         WHERE heartbeat_at >= ?1 ORDER BY started_at DESC",
    )?;
    let mut rows = stmt.query([now.saturating_sub(forget_after_ms)])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let id: Vec<u8> = row.get(0)?;
        let heartbeat_at: Millis = row.get(5)?;
        let stopped: bool = row.get(6)?;
        out.push(NodeInfo {
            id: NodeId(
                Uuid::from_slice(&id)
                    .map_err(|e| Fault::Store(StoreError::Corrupt(e.to_string())))?,
            ),
            host: row.get(1)?,
            pid: row.get(2)?,
            version: row.get(3)?,
            status: if stopped {
                NodeStatus::Stopped
            } else if heartbeat_at <= now.saturating_sub(dead_after_ms) {
                NodeStatus::Dead
            } else {
                NodeStatus::Alive
            },
            started_at: to_timestamp(row.get(4)?),
            heartbeat_at: to_timestamp(heartbeat_at),
        });
    }
    Ok(out)
}
