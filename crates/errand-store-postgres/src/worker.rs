//! Consumer liveness: the workers seen claiming, for `GET /v1/workers` and explain.

use deadpool_postgres::GenericClient;
use errand_core::time::to_timestamp;
use errand_core::worker::{WorkerInfo, WorkerSeen};
use errand_core::NodeId;
use serde_json::Value;

use crate::fault::{corrupt, QResult, RowExt};
use crate::job_row::millis;

/// Records workers seen claiming (one statement for the batch); the last claim only moves
/// forward.
pub(crate) async fn seen_many(client: &impl GenericClient, seen: &[WorkerSeen]) -> QResult<()> {
    if seen.is_empty() {
        return Ok(());
    }
    let mut name = Vec::new();
    let mut node = Vec::new();
    let mut queues = Vec::new();
    let mut kinds = Vec::new();
    let mut at = Vec::new();
    let mut sorted: Vec<&WorkerSeen> = seen.iter().collect();
    // One row per name (the latest claim wins), in name order so two batches cannot
    // deadlock.
    sorted.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(b.last_claim_at.cmp(&a.last_claim_at))
    });
    sorted.dedup_by(|a, b| a.name == b.name);
    for w in sorted {
        name.push(w.name.clone());
        node.push(w.node.0);
        queues.push(Value::from(w.queues.clone()));
        kinds.push(Value::from(w.kinds.clone()));
        at.push(w.last_claim_at);
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO workers (name, node, queues, kinds, last_claim_at) \
             SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::jsonb[], $4::jsonb[], $5::bigint[]) \
             ON CONFLICT (name) DO UPDATE SET node = EXCLUDED.node, queues = EXCLUDED.queues, \
                 kinds = EXCLUDED.kinds, \
                 last_claim_at = GREATEST(workers.last_claim_at, EXCLUDED.last_claim_at)",
        )
        .await?;
    client
        .execute(&stmt, &[&name, &node, &queues, &kinds, &at])
        .await?;
    Ok(())
}

/// Workers, latest claim first, with their running jobs. `queue` keeps those whose queues
/// include it.
pub(crate) async fn list(
    client: &impl GenericClient,
    queue: Option<&str>,
) -> QResult<Vec<WorkerInfo>> {
    let stmt = client
        .prepare_cached(
            "SELECT w.name, w.node, w.queues, w.kinds, w.last_claim_at, \
                 (SELECT COUNT(*) FROM jobs WHERE worker = w.name AND state = 'running') \
             FROM workers w WHERE $1::text IS NULL OR w.queues ? $1 \
             ORDER BY w.last_claim_at DESC, w.name",
        )
        .await?;
    let mut out = Vec::new();
    for row in client.query(&stmt, &[&queue]).await? {
        let n: i64 = row.column(5)?;
        out.push(WorkerInfo {
            name: row.column(0)?,
            node: NodeId(row.column(1)?),
            queues: serde_json::from_value(row.column(2)?).map_err(corrupt)?,
            kinds: serde_json::from_value(row.column(3)?).map_err(corrupt)?,
            last_claim_at: to_timestamp(row.column(4)?),
            jobs_in_flight: n.max(0) as u64,
        });
    }
    Ok(out)
}

/// Forgets workers not seen claiming for `older_than`.
pub(crate) async fn prune(
    client: &impl GenericClient,
    older_than: std::time::Duration,
) -> QResult<u64> {
    let stmt = client
        .prepare_cached("DELETE FROM workers WHERE last_claim_at < errand_now() - $1")
        .await?;
    Ok(client.execute(&stmt, &[&millis(older_than)]).await?)
}
