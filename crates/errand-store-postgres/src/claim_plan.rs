//! The planned claim: when a queue has a concurrency or rate, or any kind or key limit
//! exists, the claim decides which candidates it may lease with
//! [`errand_core::throttle::plan_claim`], under row locks so that claims on several nodes
//! never exceed a limit together.
//!
//! Lock order: the queue row (`FOR UPDATE`, when it has a concurrency or rate), then the
//! candidates (`FOR UPDATE SKIP LOCKED`, which never waits), then the `limits` rows of the
//! candidates' kinds and rate keys, in (scope, name) order. Only claims wait on `limits`
//! rows, all in one order, so they cannot deadlock; and a claim locks only the limits its
//! candidates use, so a kind limit does not serialize claims of queues without that kind.
//! Running jobs are counted after the locks are held, so every claim that committed
//! before is counted. A rate-limited job is never leased early: it stays available.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::GenericClient;
use errand_core::throttle::{plan_claim, ClaimCandidate, ClaimLimits, LimitState, TokenBucket};
use errand_core::{Job, JobId};
use errand_store::JobClaimTogetherParams;

use crate::array_rows::{array_rows, in_array};
use crate::claim_slots::ClaimSlots;
use crate::fault::{QResult, RowExt};
use crate::job_row::{job_from_row, millis, JOB_COLUMNS, JOB_COLUMN_COUNT};
use crate::job_write::{lease_sql, OPEN_ATTEMPTS};
use crate::limit::{bucket_of, rate_of};

/// Candidates read per claim: enough to skip jobs a kind or key limit holds back.
fn scan_limit(max: u32) -> i64 {
    (i64::from(max) * 4 + 64).min(2000)
}

/// Claims under limits (see the module doc). Returns the leased jobs in claim order.
/// Each job comes with the lease token it was leased under.
pub(crate) async fn claim(
    client: &impl GenericClient,
    p: &JobClaimTogetherParams,
    slots: &ClaimSlots,
    kinds: Option<&[String]>,
) -> QResult<Vec<(Job, uuid::Uuid)>> {
    let queue = p.queue.as_str();
    let read = client
        .prepare_cached(
            "SELECT concurrency, rate_limit, rate_period_ms, rate_burst, tokens, tokens_at, fair \
             FROM queues WHERE name = $1 AND NOT paused",
        )
        .await?;
    let Some(mut row) = client.query_opt(&read, &[&queue]).await? else {
        return Ok(Vec::new());
    };
    let limited =
        row.column::<Option<i32>>(0)?.is_some() || row.column::<Option<i32>>(1)?.is_some();
    if limited {
        let lock = client
            .prepare_cached(
                "SELECT concurrency, rate_limit, rate_period_ms, rate_burst, tokens, tokens_at, fair \
                 FROM queues WHERE name = $1 AND NOT paused FOR UPDATE",
            )
            .await?;
        match client.query_opt(&lock, &[&queue]).await? {
            Some(r) => row = r,
            None => return Ok(Vec::new()),
        }
    }
    let fair: bool = row.column(6)?;
    let queue_conc: Option<i32> = row.column(0)?;
    let queue_rate = rate_of(row.column(1)?, row.column(2)?, row.column(3)?);
    let queue_bucket = bucket_of(row.column(4)?, row.column(5)?);

    let cand = client
        .prepare_cached(
            "SELECT id, kind, rate_key FROM jobs \
             WHERE queue = $1 AND state IN ('available', 'scheduled') AND NOT parked AND run_at <= errand_now() \
               AND ($2::text[] IS NULL OR kind = ANY($2)) \
             ORDER BY priority DESC, fair_rank NULLS FIRST, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let mut candidates = Vec::new();
    for r in client
        .query(&cand, &[&queue, &kinds, &scan_limit(p.total())])
        .await?
    {
        candidates.push(ClaimCandidate {
            id: JobId(r.column(0)?),
            kind: r.column(1)?,
            rate_key: r.column(2)?,
        });
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // The limits of the candidates' kinds and rate keys, locked in (scope, name) order.
    let kinds_seen: Vec<String> = candidates
        .iter()
        .map(|c| c.kind.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let keys: Vec<String> = candidates
        .iter()
        .filter_map(|c| c.rate_key.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let lock_limits = client
        .prepare_cached(&format!(
            "SELECT scope, name, concurrency, rate_limit, rate_period_ms, rate_burst, tokens, tokens_at \
             FROM limits WHERE (scope = 'kind' AND name {}) OR (scope = 'key' AND name {}) \
             ORDER BY scope, name FOR UPDATE",
            in_array(kinds_seen.len(), "$1::text"),
            in_array(keys.len(), "$2::text")
        ))
        .await?;
    let limit_rows = client.query(&lock_limits, &[&kinds_seen, &keys]).await?;

    let mut kind_limits: HashMap<String, LimitState> = HashMap::new();
    let mut counted_kinds = Vec::new();
    let mut key_limits = HashMap::new();
    for r in &limit_rows {
        let scope: String = r.column(0)?;
        let name: String = r.column(1)?;
        let state = LimitState {
            concurrency: r.column::<Option<i32>>(2)?.map(|c| c.max(0) as u32),
            running: 0,
            rate: rate_of(r.column(3)?, r.column(4)?, r.column(5)?),
            bucket: bucket_of(r.column(6)?, r.column(7)?),
        };
        if scope == "key" {
            // A rate key takes only a rate: its running jobs limit nothing.
            key_limits.insert(
                name,
                LimitState {
                    concurrency: None,
                    ..state
                },
            );
            continue;
        }
        if state.concurrency.is_some() {
            counted_kinds.push(name.clone());
        }
        kind_limits.insert(name, state);
    }
    // Counted now that every lock is held.
    let kinds = array_rows(counted_kinds.len(), "u", &[("$3::text", "k")]);
    let counts = client
        .prepare_cached(&format!(
            "SELECT errand_now(), \
                 CASE WHEN $2 THEN (SELECT COUNT(*) FROM jobs WHERE queue = $1 AND state = 'running') ELSE 0 END, \
                 (SELECT COALESCE(array_agg(k ORDER BY ord), '{{}}') FROM {kinds}), \
                 (SELECT COALESCE(array_agg((SELECT COUNT(*) FROM jobs WHERE kind = u.k AND state = 'running') \
                      ORDER BY ord), '{{}}') \
                  FROM {kinds})"
        ))
        .await?;
    let row = client
        .query_one(&counts, &[&queue, &queue_conc.is_some(), &counted_kinds])
        .await?;
    let now: i64 = row.column(0)?;
    let queue_running: i64 = row.column(1)?;
    let names: Vec<String> = row.column(2)?;
    let runs: Vec<i64> = row.column(3)?;
    for (n, c) in names.into_iter().zip(runs) {
        if let Some(l) = kind_limits.get_mut(&n) {
            l.running = u32::try_from(c.max(0)).unwrap_or(u32::MAX);
        }
    }
    let limits = ClaimLimits {
        queue: limited.then(|| LimitState {
            concurrency: queue_conc.map(|c| c.max(0) as u32),
            running: u32::try_from(queue_running.max(0)).unwrap_or(u32::MAX),
            rate: queue_rate,
            bucket: queue_bucket,
        }),
        kinds: kind_limits,
        keys: key_limits,
    };
    let plan = plan_claim(p.total(), &candidates, &limits, now);
    if plan.take.is_empty() {
        return Ok(Vec::new());
    }

    let lease = client
        .prepare_cached(&format!(
            "WITH slot AS (SELECT id, n FROM UNNEST($5::uuid[]) WITH ORDINALITY AS s(id, n)), \
             claimed AS ({} FROM slot WHERE j.id = slot.id AND j.queue = $1 RETURNING j.*), \
             opened AS ({OPEN_ATTEMPTS}) \
             SELECT {JOB_COLUMNS}, lease_token FROM claimed \
             ORDER BY priority DESC, fair_rank NULLS FIRST, run_at, id",
            lease_sql("$6")
        ))
        .await?;
    let ids: Vec<uuid::Uuid> = plan.take.iter().map(|i| i.0).collect();
    let rows = client
        .query(
            &lease,
            &[
                &queue,
                &slots.workers,
                &slots.tokens,
                &millis(p.lease),
                &ids,
                &slots.starts,
            ],
        )
        .await?;
    let mut leased = Vec::with_capacity(rows.len());
    for row in &rows {
        leased.push((job_from_row(row)?, row.column(JOB_COLUMN_COUNT)?));
    }
    let jobs: Vec<&Job> = leased.iter().map(|(j, _)| j).collect();
    write_buckets(client, queue, &plan, fair, &jobs).await?;
    Ok(leased)
}

/// Writes back the buckets the plan drew from, and moves a fair queue's virtual time.
async fn write_buckets(
    client: &impl GenericClient,
    queue: &str,
    plan: &errand_core::throttle::ClaimPlan,
    fair: bool,
    jobs: &[&Job],
) -> QResult<()> {
    let vtime = if fair {
        fair_ranks(client, jobs).await?
    } else {
        None
    };
    if plan.queue_bucket.is_some() || vtime.is_some() {
        let stmt = client
            .prepare_cached(
                "UPDATE queues SET tokens = CASE WHEN $2 THEN $3 ELSE tokens END, \
                     tokens_at = CASE WHEN $2 THEN $4 ELSE tokens_at END, \
                     vtime = GREATEST(vtime, COALESCE($5, vtime)) WHERE name = $1",
            )
            .await?;
        let b = plan.queue_bucket;
        client
            .execute(
                &stmt,
                &[
                    &queue,
                    &b.is_some(),
                    &b.map(|b| b.tokens),
                    &b.map(|b| b.at),
                    &vtime,
                ],
            )
            .await?;
    }
    let mut scope = Vec::new();
    let mut name = Vec::new();
    let mut tokens = Vec::new();
    let mut at = Vec::new();
    let mut push = |s: &'static str, n: &String, b: &TokenBucket| {
        scope.push(s);
        name.push(n.clone());
        tokens.push(b.tokens);
        at.push(b.at);
    };
    for (n, b) in &plan.kind_buckets {
        push("kind", n, b);
    }
    for (n, b) in &plan.key_buckets {
        push("key", n, b);
    }
    if !scope.is_empty() {
        let stmt = client
            .prepare_cached(
                "UPDATE limits l SET tokens = u.t, tokens_at = u.at \
                 FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::bigint[]) AS u(s, n, t, at) \
                 WHERE l.scope = u.s AND l.name = u.n",
            )
            .await?;
        client
            .execute(&stmt, &[&scope, &name, &tokens, &at])
            .await?;
    }
    Ok(())
}

/// The highest fair rank among the claimed jobs.
async fn fair_ranks(client: &impl GenericClient, jobs: &[&Job]) -> QResult<Option<i64>> {
    if jobs.is_empty() {
        return Ok(None);
    }
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| j.id.0).collect();
    let stmt = client
        .prepare_cached("SELECT MAX(fair_rank) FROM jobs WHERE id = ANY($1)")
        .await?;
    client.query_one(&stmt, &[&ids]).await?.column(0)
}
