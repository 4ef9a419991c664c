//! Consumer liveness: the workers seen claiming, their latest claim, and what they hold.

use errand_core::time::to_timestamp;
use errand_core::worker::{WorkerInfo, WorkerSeen};
use errand_core::{Millis, NodeId};
use errand_store::StoreError;
use rusqlite::{params, Connection};
use uuid::Uuid;

use crate::fault::{Fault, QResult};

fn json(v: &[String]) -> QResult<String> {
    serde_json::to_string(v).map_err(|e| Fault::Store(StoreError::Internal(e.to_string())))
}

/// Records what nodes saw of their workers; a worker's latest claim wins.
pub(crate) fn seen_many(conn: &Connection, seen: &[WorkerSeen]) -> QResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO workers (name, node, queues, kinds, last_claim_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (name) DO UPDATE SET \
             node = CASE WHEN excluded.last_claim_at >= last_claim_at THEN excluded.node ELSE node END, \
             queues = CASE WHEN excluded.last_claim_at >= last_claim_at THEN excluded.queues ELSE queues END, \
             kinds = CASE WHEN excluded.last_claim_at >= last_claim_at THEN excluded.kinds ELSE kinds END, \
             last_claim_at = MAX(last_claim_at, excluded.last_claim_at)",
    )?;
    for w in seen {
        stmt.execute(params![
            w.name,
            w.node.0.as_bytes().as_slice(),
            json(&w.queues)?,
            json(&w.kinds)?,
            w.last_claim_at
        ])?;
    }
    Ok(())
}

/// Every worker seen, latest claim first, with the jobs it holds leases on.
pub(crate) fn list(conn: &Connection) -> QResult<Vec<WorkerInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, node, queues, kinds, last_claim_at, \
             (SELECT count(*) FROM jobs INDEXED BY jobs_leases WHERE state = 'running' AND worker = workers.name) \
         FROM workers ORDER BY last_claim_at DESC, name",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    let corrupt = |e: String| Fault::Store(StoreError::Corrupt(e));
    while let Some(row) = rows.next()? {
        let node: Vec<u8> = row.get(1)?;
        let queues: String = row.get(2)?;
        let kinds: String = row.get(3)?;
        let in_flight: i64 = row.get(5)?;
        out.push(WorkerInfo {
            name: row.get(0)?,
            node: NodeId(Uuid::from_slice(&node).map_err(|e| corrupt(e.to_string()))?),
            queues: serde_json::from_str(&queues).map_err(|e| corrupt(e.to_string()))?,
            kinds: serde_json::from_str(&kinds).map_err(|e| corrupt(e.to_string()))?,
            last_claim_at: to_timestamp(row.get(4)?),
            jobs_in_flight: in_flight.max(0) as u64,
        });
    }
    Ok(out)
}

/// Forgets workers whose latest claim is older than `older_ms`.
pub(crate) fn prune(conn: &Connection, now: Millis, older_ms: Millis) -> QResult<u64> {
    let n = conn
        .prepare_cached("DELETE FROM workers WHERE last_claim_at < ?1")?
        .execute([now.saturating_sub(older_ms)])?;
    Ok(n as u64)
}
