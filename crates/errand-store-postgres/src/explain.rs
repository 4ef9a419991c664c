//! The facts `GET /v1/jobs/{id}/explain` reasons from, read in one transaction.

use deadpool_postgres::GenericClient;
use errand_core::explain::{ExplainFacts, GateFacts, Holders};
use errand_core::ordering::Gate;
use errand_core::throttle::LimitScope;
use errand_core::{JobId, QueueName};
use errand_store::StoreError;

use crate::fault::{Fault, QResult, RowExt};
use crate::limit::bucket_of;
use crate::{job_read, limit, queue, session, worker};

/// Up to ten holders and their count, from `SELECT count, ids` rows.
fn holders(row: &tokio_postgres::Row) -> QResult<Holders> {
    let count: i64 = row.column(0)?;
    let ids: Vec<uuid::Uuid> = row.column(1)?;
    Ok(Holders {
        count: count.max(0) as u64,
        sample: ids.into_iter().map(JobId).collect(),
    })
}

/// Collects what explains job `id`'s wait.
pub(crate) async fn facts(client: &impl GenericClient, id: JobId) -> QResult<ExplainFacts> {
    let job = job_read::get(client, id).await?;
    let q = queue_facts(client, &job.queue).await?;
    let (queue_paused, queue_settings, queue_bucket, now) = q;
    let running = client
        .prepare_cached(
            "SELECT COUNT(*), COALESCE((SELECT array_agg(id) FROM (SELECT id FROM jobs \
                 WHERE queue = $1 AND state = 'running' ORDER BY started_at, id LIMIT 10) s), '{}') \
             FROM jobs WHERE queue = $1 AND state = 'running'",
        )
        .await?;
    let queue_running = holders(&client.query_one(&running, &[&job.queue.as_str()]).await?)?;

    let kind_limit = match limit::get(client, LimitScope::Kind, job.kind.as_str()).await {
        Ok(info) => {
            let stmt = client
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE((SELECT array_agg(id) FROM (SELECT id FROM jobs \
                         WHERE kind = $1 AND state = 'running' ORDER BY started_at, id LIMIT 10) s), '{}') \
                     FROM jobs WHERE kind = $1 AND state = 'running'",
                )
                .await?;
            let h = holders(&client.query_one(&stmt, &[&job.kind.as_str()]).await?)?;
            let b = stored_bucket(client, LimitScope::Kind, job.kind.as_str()).await?;
            Some((info.limit, h, b))
        }
        Err(Fault::Store(StoreError::NotFound { .. })) => None,
        Err(e) => return Err(e),
    };
    let key_limit = match &job.ordering.rate_key {
        Some(k) => match limit::get(client, LimitScope::Key, k).await {
            Ok(info) => Some((info.limit, stored_bucket(client, LimitScope::Key, k).await?)),
            Err(Fault::Store(StoreError::NotFound { .. })) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let gate = match job.ordering.gate() {
        Some(g) => Some(gate_facts(client, &g).await?),
        None => None,
    };
    let workers = worker::list(client, Some(job.queue.as_str())).await?;
    Ok(ExplainFacts {
        job,
        now,
        queue_paused,
        queue_settings,
        queue_running,
        queue_bucket,
        kind_limit,
        key_limit,
        gate,
        workers,
    })
}

type QueueFacts = (
    bool,
    errand_core::queue::QueueSettings,
    Option<errand_core::throttle::TokenBucket>,
    i64,
);

async fn queue_facts(client: &impl GenericClient, name: &QueueName) -> QResult<QueueFacts> {
    let info = queue::list(client, Some(name)).await?.pop();
    let stmt = client
        .prepare_cached("SELECT tokens, tokens_at, errand_now() FROM queues WHERE name = $1")
        .await?;
    let row = client.query_opt(&stmt, &[&name.as_str()]).await?;
    let (bucket, now) = match row {
        Some(r) => (bucket_of(r.column(0)?, r.column(1)?), r.column(2)?),
        None => {
            let now = client
                .query_one("SELECT errand_now()", &[])
                .await?
                .column(0)?;
            (None, now)
        }
    };
    Ok(match info {
        Some(i) => (i.paused, i.settings, bucket, now),
        None => (false, Default::default(), None, now),
    })
}

async fn stored_bucket(
    client: &impl GenericClient,
    scope: LimitScope,
    name: &str,
) -> QResult<Option<errand_core::throttle::TokenBucket>> {
    let stmt = client
        .prepare_cached("SELECT tokens, tokens_at FROM limits WHERE scope = $1 AND name = $2")
        .await?;
    Ok(
        match client.query_opt(&stmt, &[&scope.as_str(), &name]).await? {
            Some(r) => bucket_of(r.column(0)?, r.column(1)?),
            None => None,
        },
    )
}

async fn gate_facts(client: &impl GenericClient, gate: &Gate) -> QResult<GateFacts> {
    let name = gate.stored_name();
    let stmt = client
        .prepare_cached(
            "SELECT COUNT(*), COALESCE((SELECT array_agg(id ORDER BY gate_seq) FROM (SELECT id, gate_seq FROM jobs \
                 WHERE gate = $1 AND NOT parked AND state IN ('available', 'scheduled', 'running') \
                 ORDER BY gate_seq LIMIT 10) s), '{}'), \
                 (SELECT capacity FROM gates WHERE name = $1) \
             FROM jobs WHERE gate = $1 AND NOT parked AND state IN ('available', 'scheduled', 'running')",
        )
        .await?;
    let row = client.query_one(&stmt, &[&name]).await?;
    let capacity: Option<i32> = row.column(2)?;
    let session = match gate {
        Gate::Session { key, .. } => match session::get(client, key).await {
            Ok(s) => Some(s),
            Err(Fault::Store(StoreError::NotFound { .. })) => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    Ok(GateFacts {
        name,
        capacity: capacity.map_or(gate.capacity(), |c| c.max(0) as u32),
        holders: holders(&row)?,
        session,
    })
}
