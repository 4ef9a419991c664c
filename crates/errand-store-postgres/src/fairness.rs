//! Fair queues: ranking new jobs round-robin across fairness keys (start-time fair
//! queuing, [`errand_core::ordering::fair_rank`]).
//!
//! A queue turns fair when a job with a fairness key is first inserted into it. The key
//! rows (`fair_keys`) are locked in (queue, key) order before ranks are drawn, so two
//! nodes inserting for one key at once get distinct, increasing ranks.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::GenericClient;
use errand_core::ordering::fair_rank;
use errand_core::NewJob;

use crate::fault::{QResult, RowExt};

/// Ranks the inserted jobs of fair queues (`jobs` in insert order; only rows that were
/// inserted). Marks queues fair first when a job names a fairness key. Does nothing (and
/// costs no statement) when no job has a key and `fair_queues` is empty.
pub(crate) async fn rank(
    client: &impl GenericClient,
    jobs: &[&NewJob],
    fair_queues: &BTreeSet<String>,
) -> QResult<()> {
    let mut queues: BTreeSet<String> = fair_queues.clone();
    let newly: Vec<String> = jobs
        .iter()
        .filter(|j| j.ordering.fairness_key.is_some())
        .map(|j| j.queue.as_str().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|q| !fair_queues.contains(q))
        .collect();
    if !newly.is_empty() {
        let stmt = client
            .prepare_cached("UPDATE queues SET fair = true WHERE name = ANY($1) AND NOT fair")
            .await?;
        client.execute(&stmt, &[&newly]).await?;
        queues.extend(newly);
    }
    let ranked: Vec<&&NewJob> = jobs
        .iter()
        .filter(|j| queues.contains(j.queue.as_str()))
        .collect();
    if ranked.is_empty() {
        return Ok(());
    }
    // Lock (creating when missing) each (queue, key) row, in order.
    let keys: BTreeSet<(String, String)> = ranked
        .iter()
        .map(|j| {
            (
                j.queue.as_str().to_string(),
                j.ordering.fairness_key.clone().unwrap_or_default(),
            )
        })
        .collect();
    let (kq, kk): (Vec<String>, Vec<String>) = keys.into_iter().unzip();
    let create = client
        .prepare_cached(
            "INSERT INTO fair_keys (queue, key, last_rank) \
             SELECT q, k, $3 FROM UNNEST($1::text[], $2::text[]) AS u(q, k) ORDER BY q, k \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    client.execute(&create, &[&kq, &kk, &i64::MIN]).await?;
    let locked = client
        .prepare_cached(
            "SELECT f.queue, f.key, f.last_rank, q.vtime FROM fair_keys f JOIN queues q ON q.name = f.queue \
             WHERE (f.queue, f.key) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) \
             ORDER BY f.queue, f.key FOR UPDATE OF f",
        )
        .await?;
    let mut last: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for row in client.query(&locked, &[&kq, &kk]).await? {
        last.insert(
            (row.column(0)?, row.column(1)?),
            (row.column(2)?, row.column(3)?),
        );
    }
    let mut ids = Vec::with_capacity(ranked.len());
    let mut ranks = Vec::with_capacity(ranked.len());
    for j in ranked {
        let k = (
            j.queue.as_str().to_string(),
            j.ordering.fairness_key.clone().unwrap_or_default(),
        );
        let (prev, vtime) = last.get(&k).copied().unwrap_or((i64::MIN, 0));
        let r = fair_rank(Some(prev), vtime, j.ordering.fair_step());
        last.insert(k, (r, vtime));
        ids.push(j.id.0);
        ranks.push(r);
    }
    let (uq, uk, ur): (Vec<String>, Vec<String>, Vec<i64>) = last
        .into_iter()
        .map(|((q, k), (r, _))| (q, k, r))
        .fold((vec![], vec![], vec![]), |mut acc, (q, k, r)| {
            acc.0.push(q);
            acc.1.push(k);
            acc.2.push(r);
            acc
        });
    let write = client
        .prepare_cached(
            "WITH keys AS (UPDATE fair_keys f SET last_rank = u.r \
                 FROM UNNEST($3::text[], $4::text[], $5::bigint[]) AS u(q, k, r) \
                 WHERE f.queue = u.q AND f.key = u.k) \
             UPDATE jobs j SET fair_rank = u.r FROM UNNEST($1::uuid[], $2::bigint[]) AS u(id, r) \
             WHERE j.id = u.id",
        )
        .await?;
    client
        .execute(&write, &[&ids, &ranks, &uq, &uk, &ur])
        .await?;
    Ok(())
}
