//! Importing jobs exported from another store.
//!
//! A job's place in a flow (workflow step, batch, parents, context) is not restored yet:
//! restored jobs are plain jobs.

use deadpool_postgres::GenericClient;
use errand_core::limits::DEFAULT_IDEMPOTENCY_WINDOW_MS;
use errand_core::restore::{restored_attempt, restored_state};
use errand_core::time::to_millis;
use errand_store::{RestoredJob, StoreError};
use serde_json::Value;

use std::collections::{BTreeSet, HashSet};

use errand_core::Job;

use crate::fairness::{rank, NewRank};
use crate::fault::{Fault, QResult, RowExt};
use crate::gate::Arrival;

fn count(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Inserts exported jobs that are not here yet, inside the caller's transaction.
pub(crate) async fn restore_many(
    client: &impl GenericClient,
    jobs: &[RestoredJob],
) -> QResult<u64> {
    let queue = client
        .prepare_cached("INSERT INTO queues (name, created_at) VALUES ($1, errand_now()) ON CONFLICT DO NOTHING")
        .await?;
    let insert = client
        .prepare_cached(
            "INSERT INTO jobs (id, kind, queue, state, payload, priority, run_at, attempt, max_attempts, \
             timeout_ms, tags, idempotency_key, idempotency_expires_at, result, error, progress, checkpoint, \
             worker, created_at, updated_at, started_at, finished_at, schedule_name, schedule_slot, \
             reply_to, correlation_id, callback_url, gate, gate_limit, session_on_dead, fairness_key, \
             fairness_weight, rate_key, secrets) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34) \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let attempt = client
        .prepare_cached(
            "INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome, error, \
             report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .await?;
    // A job a schedule fired claims its slot in the ledger too: an export is not one
    // snapshot, so its ledger lines may miss a slot whose job it carries, and older exports
    // carry no ledger at all. Either way no backfill may run that slot again.
    let ledger = client
        .prepare_cached(
            "INSERT INTO schedule_slots (schedule, slot, job_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let now: i64 = client
        .query_one(&client.prepare_cached("SELECT errand_now()").await?, &[])
        .await?
        .column(0)?;
    let mut inserted = 0;
    let mut arrivals = Vec::new();
    let mut rejoined: Vec<&Job> = Vec::new();
    for restored in jobs {
        let secrets = restored.stored_secrets();
        let RestoredJob { job, attempts, .. } = restored;
        let o = &job.ordering;
        let gate = o.gate();
        let gate_limit = o
            .concurrency_key
            .as_ref()
            .map(|_| count(o.concurrency_limit.unwrap_or(1)));
        let on_dead = o
            .session_key
            .as_ref()
            .map(|_| o.session_on_dead.unwrap_or_default().as_str());
        let weight = o.fairness_weight.map(count);
        client.execute(&queue, &[&job.queue.as_str()]).await?;
        let created = to_millis(job.created_at);
        let progress = job
            .progress
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
        let tags = Value::from(job.tags.clone());
        let n = client
            .execute(
                &insert,
                &[
                    &job.id.0,
                    &job.kind.as_str(),
                    &job.queue.as_str(),
                    &restored_state(job.state).as_str(),
                    &job.payload,
                    &job.priority,
                    &to_millis(job.run_at),
                    &count(job.attempt),
                    &count(job.max_attempts),
                    &job.timeout_ms.map(|t| t as i64),
                    &tags,
                    &job.idempotency_key,
                    &job.idempotency_key
                        .as_ref()
                        .map(|_| created + DEFAULT_IDEMPOTENCY_WINDOW_MS),
                    &job.result,
                    &job.error,
                    &progress,
                    &job.checkpoint,
                    &job.worker,
                    &created,
                    &to_millis(job.updated_at),
                    &job.started_at.map(to_millis),
                    &job.finished_at.map(to_millis),
                    &job.schedule,
                    &job.slot.map(to_millis),
                    &job.reply_to.as_ref().map(|q| q.as_str()),
                    &job.correlation_id,
                    &job.callback_url,
                    &gate.as_ref().map(|g| g.stored_name()),
                    &gate_limit,
                    &on_dead,
                    &o.fairness_key,
                    &weight,
                    &o.rate_key,
                    &secrets,
                ],
            )
            .await?;
        if n == 0 {
            continue;
        }
        inserted += 1;
        // An unfinished job takes its fair rank and arrives in its gate as an insert does,
        // in the order given.
        if !restored_state(job.state).is_final() {
            rejoined.push(job);
            if let Some(gate) = gate {
                arrivals.push(Arrival {
                    id: job.id.0,
                    gate,
                    due: to_millis(job.run_at) <= now,
                });
            }
        }
        if let (Some(schedule), Some(slot)) = (&job.schedule, job.slot) {
            client
                .execute(&ledger, &[schedule, &to_millis(slot), &job.id.0])
                .await?;
        }
        for a in attempts {
            let a = restored_attempt(a, job);
            let report = a
                .report
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
            client
                .execute(
                    &attempt,
                    &[
                        &job.id.0,
                        &count(a.attempt),
                        &a.worker,
                        &to_millis(a.started_at),
                        &a.finished_at.map(to_millis),
                        &a.outcome.as_str(),
                        &a.error,
                        &report,
                    ],
                )
                .await?;
        }
    }
    rejoin(client, &rejoined, &arrivals).await?;
    Ok(inserted)
}

/// Restored unfinished jobs (`jobs`, gated ones in `arrivals`, in the order the export
/// gives) arrive in their gates like inserts, except that they keep each gate's capacity
/// (a job's limit only sets the capacity of a gate it creates); a parked one not due yet
/// is stored as `scheduled`, so promotion wakes its gate when it falls due. Then the jobs
/// of fair queues take their ranks.
async fn rejoin(client: &impl GenericClient, jobs: &[&Job], arrivals: &[Arrival]) -> QResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let parked: HashSet<uuid::Uuid> = if arrivals.is_empty() {
        HashSet::new()
    } else {
        crate::gate::arrive(client, arrivals, false)
            .await?
            .into_iter()
            .collect()
    };
    if !parked.is_empty() {
        let later = client
            .prepare_cached(
                "UPDATE jobs SET state = 'scheduled' WHERE id = ANY($1) AND parked \
                 AND state = 'available' AND run_at > errand_now()",
            )
            .await?;
        let ids: Vec<uuid::Uuid> = parked.iter().copied().collect();
        client.execute(&later, &[&ids]).await?;
    }
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j.queue.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fair = client
        .prepare_cached("SELECT name FROM queues WHERE fair AND name = ANY($1)")
        .await?;
    let mut fair_queues = BTreeSet::new();
    for row in client.query(&fair, &[&names]).await? {
        fair_queues.insert(row.column::<String>(0)?);
    }
    if fair_queues.is_empty() && jobs.iter().all(|j| j.ordering.fairness_key.is_none()) {
        return Ok(());
    }
    let ranked: Vec<NewRank<'_>> = jobs
        .iter()
        .map(|j| NewRank {
            id: j.id.0,
            queue: j.queue.as_str(),
            ordering: &j.ordering,
            ready: !parked.contains(&j.id.0),
        })
        .collect();
    rank(client, &ranked, &fair_queues).await
}

/// Creates a queue or sets whether it is paused.
pub(crate) async fn queue_upsert(
    client: &impl GenericClient,
    name: &str,
    paused: bool,
) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO queues (name, paused, created_at) VALUES ($1, $2, errand_now()) \
             ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused",
        )
        .await?;
    client.execute(&stmt, &[&name, &paused]).await?;
    Ok(())
}
