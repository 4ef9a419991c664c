//! Records of continuous instances, shared by every node.

use deadpool_postgres::GenericClient;
use errand_core::time::{to_millis, to_timestamp};
use errand_core::{InstanceRecord, InstanceState, NodeId};
use errand_store::StoreError;
use serde_json::Value;
use tokio_postgres::Row;

use crate::fault::{corrupt, Fault, QResult, RowExt};

/// Creates or replaces a record; `updated_at` is the database's now.
pub(crate) async fn put(client: &impl GenericClient, r: &InstanceRecord) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO instances (node, instance, definition, pid, state, since, restarts, last_exit, \
                 last_exit_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, errand_now()) \
             ON CONFLICT (node, instance) DO UPDATE SET definition = EXCLUDED.definition, \
                 pid = EXCLUDED.pid, state = EXCLUDED.state, since = EXCLUDED.since, \
                 restarts = EXCLUDED.restarts, last_exit = EXCLUDED.last_exit, \
                 last_exit_at = EXCLUDED.last_exit_at, updated_at = EXCLUDED.updated_at",
        )
        .await?;
    let last_exit = r
        .last_exit
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    client
        .execute(
            &stmt,
            &[
                &r.node.0,
                &r.instance,
                &r.definition,
                &r.pid.map(i64::from),
                &r.state.as_str(),
                &to_millis(r.since),
                &i64::from(r.restarts),
                &last_exit,
                &r.last_exit_at.map(to_millis),
            ],
        )
        .await?;
    Ok(())
}

fn from_row(row: &Row) -> QResult<InstanceRecord> {
    let state: String = row.column(4)?;
    let pid: Option<i64> = row.column(3)?;
    Ok(InstanceRecord {
        node: NodeId(row.column(0)?),
        instance: row.column(1)?,
        definition: row.column(2)?,
        pid: pid
            .map(u32::try_from)
            .transpose()
            .map_err(|_| corrupt("an instance pid is out of range"))?,
        state: InstanceState::from_stored(&state).map_err(corrupt)?,
        since: to_timestamp(row.column(5)?),
        restarts: u32::try_from(row.column::<i64>(6)?)
            .map_err(|_| corrupt("an instance restart count is out of range"))?,
        last_exit: row
            .column::<Option<Value>>(7)?
            .map(serde_json::from_value)
            .transpose()
            .map_err(corrupt)?,
        last_exit_at: row.column::<Option<i64>>(8)?.map(to_timestamp),
        updated_at: to_timestamp(row.column(9)?),
    })
}

/// The records of one definition, or all, by definition, node, instance.
pub(crate) async fn list(
    client: &impl GenericClient,
    definition: Option<&str>,
) -> QResult<Vec<InstanceRecord>> {
    let stmt = client
        .prepare_cached(
            "SELECT node, instance, definition, pid, state, since, restarts, last_exit, last_exit_at, \
                 updated_at FROM instances WHERE $1::text IS NULL OR definition = $1 \
             ORDER BY definition, node, instance",
        )
        .await?;
    let rows = client.query(&stmt, &[&definition]).await?;
    rows.iter().map(from_row).collect()
}

/// Forgets one record.
pub(crate) async fn delete(
    client: &impl GenericClient,
    node: NodeId,
    instance: uuid::Uuid,
) -> QResult<()> {
    let stmt = client
        .prepare_cached("DELETE FROM instances WHERE node = $1 AND instance = $2")
        .await?;
    client.execute(&stmt, &[&node.0, &instance]).await?;
    Ok(())
}

/// Deletes records not updated for `stale_after_ms`.
pub(crate) async fn prune(client: &impl GenericClient, stale_after_ms: i64) -> QResult<u64> {
    let stmt = client
        .prepare_cached("DELETE FROM instances WHERE updated_at < errand_now() - $1")
        .await?;
    Ok(client.execute(&stmt, &[&stale_after_ms]).await?)
}
