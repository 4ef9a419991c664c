//! Fair queues: ranking new jobs round-robin across fairness keys (start-time fair
//! queuing, [`errand_core::ordering::fair_rank`]) from the lowest rank still ready in the
//! queue; claims advance the queue's virtual time, the base of an empty queue.
//!
//! A queue turns fair when a job with a fairness key is first inserted into it. The key
//! rows (`fair_keys`) are locked in (queue, key) order before ranks are drawn, so two
//! nodes inserting for one key at once get distinct, increasing ranks.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::GenericClient;
use errand_core::ordering::{fair_rank, JobOrdering};

use crate::fault::{QResult, RowExt};

/// A new job (insert, restore) that may need a rank, in the order its batch gives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRank<'a> {
    /// The job (its row exists, `fair_rank` NULL).
    pub id: uuid::Uuid,
    /// Its queue.
    pub queue: &'a str,
    /// Its fairness key and weight.
    pub ordering: &'a JobOrdering,
    /// Whether it is ready for claims (not parked): its rank is then a base for the jobs
    /// after it, as the lowest ready rank.
    pub ready: bool,
}

/// Ranks new jobs of fair queues (`jobs` in batch order). A queue turns fair at its first
/// job naming a fairness key; from then on every job of it is ranked (no key counts as the
/// key `""`). `fair_queues` are the queues already fair. Does nothing (and costs no
/// statement) when no job has a key and `fair_queues` is empty.
pub(crate) async fn rank(
    client: &impl GenericClient,
    jobs: &[NewRank<'_>],
    fair_queues: &BTreeSet<String>,
) -> QResult<()> {
    let mut fair: BTreeSet<&str> = fair_queues.iter().map(String::as_str).collect();
    let mut newly: BTreeSet<String> = BTreeSet::new();
    let mut ranked: Vec<&NewRank<'_>> = Vec::new();
    for j in jobs {
        if !fair.contains(j.queue) {
            if j.ordering.fairness_key.is_none() {
                continue;
            }
            fair.insert(j.queue);
            newly.insert(j.queue.to_string());
        }
        ranked.push(j);
    }
    if !newly.is_empty() {
        let newly: Vec<String> = newly.into_iter().collect();
        let stmt = client
            .prepare_cached("UPDATE queues SET fair = true WHERE name = ANY($1) AND NOT fair")
            .await?;
        client.execute(&stmt, &[&newly]).await?;
    }
    if ranked.is_empty() {
        return Ok(());
    }
    // Lock (creating when missing) each (queue, key) row, in order.
    let keys: BTreeSet<(String, String)> = ranked
        .iter()
        .map(|j| (j.queue.to_string(), key_of(j.ordering)))
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
            "SELECT f.queue, f.key, f.last_rank FROM fair_keys f \
             WHERE (f.queue, f.key) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) \
             ORDER BY f.queue, f.key FOR UPDATE OF f",
        )
        .await?;
    let mut last: BTreeMap<(String, String), i64> = BTreeMap::new();
    for row in client.query(&locked, &[&kq, &kk]).await? {
        last.insert((row.column(0)?, row.column(1)?), row.column(2)?);
    }
    // The base of each queue: its lowest ready rank (read after the key locks, so it sees
    // the ranks of inserts of the same keys that committed first), else its virtual time.
    let names: Vec<String> = ranked
        .iter()
        .map(|j| j.queue.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let bases = client
        .prepare_cached(
            "SELECT q.name, q.vtime, (SELECT MIN(j.fair_rank) FROM jobs j WHERE j.queue = q.name \
                 AND j.fair_rank IS NOT NULL AND j.state IN ('available', 'scheduled') \
                 AND NOT j.parked) \
             FROM queues q WHERE q.name = ANY($1)",
        )
        .await?;
    let mut vtime: BTreeMap<String, i64> = BTreeMap::new();
    let mut lowest: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for row in client.query(&bases, &[&names]).await? {
        let name: String = row.column(0)?;
        vtime.insert(name.clone(), row.column(1)?);
        lowest.insert(name, row.column(2)?);
    }
    let mut ids = Vec::with_capacity(ranked.len());
    let mut ranks = Vec::with_capacity(ranked.len());
    for j in ranked {
        let k = (j.queue.to_string(), key_of(j.ordering));
        let prev = last.get(&k).copied().unwrap_or(i64::MIN);
        let low = lowest.entry(k.0.clone()).or_default();
        let base = low.unwrap_or_else(|| vtime.get(&k.0).copied().unwrap_or(0));
        let r = fair_rank(Some(prev), base, j.ordering.fair_step());
        if j.ready {
            *low = Some(low.map_or(r, |m| m.min(r)));
        }
        last.insert(k, r);
        ids.push(j.id);
        ranks.push(r);
    }
    let (uq, uk, ur): (Vec<String>, Vec<String>, Vec<i64>) =
        last.into_iter()
            .fold((vec![], vec![], vec![]), |mut acc, ((q, k), r)| {
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

fn key_of(ordering: &JobOrdering) -> String {
    ordering.fairness_key.clone().unwrap_or_default()
}
