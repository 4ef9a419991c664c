//! Node registration and listing, judged on the database clock.

use deadpool_postgres::GenericClient;
use errand_core::time::to_timestamp;
use errand_core::{NodeId, NodeInfo, NodeStatus};
use errand_store::NodeHeartbeatParams;

use crate::fault::{QResult, RowExt};

/// Registers or refreshes a node.
pub(crate) async fn heartbeat(client: &impl GenericClient, p: &NodeHeartbeatParams) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO nodes (id, host, pid, version, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, errand_now(), errand_now()) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = errand_now(), stopped = false",
        )
        .await?;
    client
        .execute(&stmt, &[&p.id.0, &p.host, &i64::from(p.pid), &p.version])
        .await?;
    Ok(())
}

/// Marks a node stopped.
pub(crate) async fn stop(client: &impl GenericClient, id: NodeId) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE nodes SET stopped = true, heartbeat_at = errand_now() WHERE id = $1",
        )
        .await?;
    client.execute(&stmt, &[&id.0]).await?;
    Ok(())
}

/// Nodes seen within `forget_after_ms`, newest first.
pub(crate) async fn list(
    client: &impl GenericClient,
    dead_after_ms: i64,
    forget_after_ms: i64,
) -> QResult<Vec<NodeInfo>> {
    let stmt = client
        .prepare_cached(
            "SELECT id, host, pid, version, started_at, heartbeat_at, stopped, \
                    heartbeat_at <= errand_now() - $1 \
             FROM nodes WHERE heartbeat_at >= errand_now() - $2 ORDER BY started_at DESC",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&dead_after_ms, &forget_after_ms])
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let stopped: bool = row.column(6)?;
        let late: bool = row.column(7)?;
        out.push(NodeInfo {
            id: NodeId(row.column(0)?),
            host: row.column(1)?,
            pid: u32::try_from(row.column::<i64>(2)?).unwrap_or(0),
            version: row.column(3)?,
            status: if stopped {
                NodeStatus::Stopped
            } else if late {
                NodeStatus::Dead
            } else {
                NodeStatus::Alive
            },
            started_at: to_timestamp(row.column(4)?),
            heartbeat_at: to_timestamp(row.column(5)?),
        });
    }
    Ok(out)
}
