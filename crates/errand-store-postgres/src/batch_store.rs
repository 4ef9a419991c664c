//! Batches: their rows, the counting of their jobs' ends (the row lock of
//! `UPDATE ... RETURNING` serializes racing ends, so exactly one transaction sees the last
//! one), and their completion (the `on_complete` job, once).

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use errand_core::batch::{self, Batch, BatchCounts, BatchState, NewBatch};
use errand_core::schedule_spec::JobTemplate;
use errand_core::time::to_timestamp;
use errand_core::{BatchId, EventType, JobId, JobState, NewJob};
use errand_store::{BatchListParams, BatchWrite, StoreError};
use serde_json::Value;
use tokio_postgres::Row;

use crate::fault::{corrupt, Fault, QResult, RowExt};
use crate::job_write;
use crate::transition::EventRows;
use crate::wake;

const BATCH_COLUMNS: &str = "id, state, total, pending, succeeded, dead, cancelled, on_complete, \
     callback_url, on_complete_job_id, created_at, closed_at, completed_at";

fn n(row: &Row, idx: usize) -> QResult<u64> {
    Ok(u64::try_from(row.column::<i64>(idx)?.max(0)).unwrap_or(0))
}

fn batch_from_row(row: &Row) -> QResult<Batch> {
    let state: String = row.column(1)?;
    Ok(Batch {
        id: BatchId(row.column(0)?),
        state: BatchState::parse(&state).map_err(corrupt)?,
        counts: BatchCounts {
            total: n(row, 2)?,
            pending: n(row, 3)?,
            succeeded: n(row, 4)?,
            dead: n(row, 5)?,
            cancelled: n(row, 6)?,
        },
        on_complete: row
            .column::<Option<Value>>(7)?
            .map(serde_json::from_value)
            .transpose()
            .map_err(corrupt)?,
        callback_url: row.column(8)?,
        on_complete_job_id: row.column::<Option<uuid::Uuid>>(9)?.map(JobId),
        created_at: to_timestamp(row.column(10)?),
        closed_at: row.column::<Option<i64>>(11)?.map(to_timestamp),
        completed_at: row.column::<Option<i64>>(12)?.map(to_timestamp),
    })
}

/// One batch.
pub(crate) async fn get(client: &impl GenericClient, id: BatchId) -> QResult<Batch> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1"
        ))
        .await?;
    let row = client
        .query_opt(&stmt, &[&id.0])
        .await?
        .ok_or_else(|| not_found(id))?;
    batch_from_row(&row)
}

fn not_found(id: BatchId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("batch {id}"),
    })
}

/// A page of batches, newest first.
pub(crate) async fn list(client: &impl GenericClient, p: &BatchListParams) -> QResult<Vec<Batch>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE ($1::text IS NULL OR state = $1) \
             AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .await?;
    let state = p.state.map(|s| s.as_str());
    let before = p.before.map(|b| b.0);
    let limit = i64::from(p.limit);
    client
        .query(&stmt, &[&state, &before, &limit])
        .await?
        .iter()
        .map(batch_from_row)
        .collect()
}

/// Locks a batch row; `NotFound` when there is none.
async fn lock(client: &impl GenericClient, id: BatchId) -> QResult<(BatchState, u64)> {
    let stmt = client
        .prepare_cached("SELECT state, pending FROM batches WHERE id = $1 FOR UPDATE")
        .await?;
    let row = client
        .query_opt(&stmt, &[&id.0])
        .await?
        .ok_or_else(|| not_found(id))?;
    let state: String = row.column(0)?;
    Ok((BatchState::parse(&state).map_err(corrupt)?, n(&row, 1)?))
}

/// Creates a batch with its first jobs; a closed batch with nothing pending completes.
pub(crate) async fn create(
    client: &impl GenericClient,
    new: &NewBatch,
    jobs: Vec<NewJob>,
    window: Duration,
    events: &mut EventRows,
) -> QResult<BatchWrite> {
    let on_complete = new
        .on_complete
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    // Open while its jobs go in: a job inserted already ended counts, but cannot complete it.
    let stmt = client
        .prepare_cached(
            "INSERT INTO batches (id, state, on_complete, callback_url, created_at) \
             VALUES ($1, 'open', $2, $3, errand_now())",
        )
        .await?;
    client
        .execute(&stmt, &[&new.id.0, &on_complete, &new.callback_url])
        .await?;
    let inserted = insert(client, new.id, jobs, window).await?;
    finish_write(client, new.id, inserted, !new.open, events).await
}

/// Adds jobs to an open batch.
pub(crate) async fn add(
    client: &impl GenericClient,
    id: BatchId,
    jobs: Vec<NewJob>,
    window: Duration,
    events: &mut EventRows,
) -> QResult<BatchWrite> {
    let (state, _) = lock(client, id).await?;
    if state != BatchState::Open {
        return Err(Fault::Store(StoreError::WrongState(format!(
            "batch {id} is {}: jobs are added to an open batch",
            state.as_str()
        ))));
    }
    let inserted = insert(client, id, jobs, window).await?;
    finish_write(client, id, inserted, false, events).await
}

async fn insert(
    client: &impl GenericClient,
    id: BatchId,
    mut jobs: Vec<NewJob>,
    window: Duration,
) -> QResult<Vec<errand_store::InsertedJob>> {
    for j in &mut jobs {
        j.flow.batch = Some(id);
    }
    job_write::insert_many(client, jobs, window).await
}

async fn finish_write(
    client: &impl GenericClient,
    id: BatchId,
    jobs: Vec<errand_store::InsertedJob>,
    close: bool,
    events: &mut EventRows,
) -> QResult<BatchWrite> {
    let added = i64::try_from(jobs.iter().filter(|j| j.inserted).count()).unwrap_or(i64::MAX);
    let stmt = client
        .prepare_cached(
            "UPDATE batches SET total = total + $2, pending = pending + $2, \
                 state = CASE WHEN $3 THEN 'closed' ELSE state END, \
                 closed_at = CASE WHEN $3 THEN errand_now() ELSE closed_at END \
             WHERE id = $1 RETURNING state, pending",
        )
        .await?;
    let row = client.query_one(&stmt, &[&id.0, &added, &close]).await?;
    let state: String = row.column(0)?;
    if state == "closed" && row.column::<i64>(1)? <= 0 {
        complete(client, id, events).await?;
    }
    Ok(BatchWrite {
        batch: get(client, id).await?,
        jobs,
    })
}

/// Closes an open batch (completing it when nothing is pending); a closed or completed
/// batch is left as it is.
pub(crate) async fn close(
    client: &impl GenericClient,
    id: BatchId,
    events: &mut EventRows,
) -> QResult<Batch> {
    let (state, pending) = lock(client, id).await?;
    if state == BatchState::Open {
        let stmt = client
            .prepare_cached(
                "UPDATE batches SET state = 'closed', closed_at = errand_now() WHERE id = $1",
            )
            .await?;
        client.execute(&stmt, &[&id.0]).await?;
        if pending == 0 {
            complete(client, id, events).await?;
        }
    }
    get(client, id).await
}

/// Counts ends of a batch's jobs; completes the batch at its last. A completed batch keeps
/// its counts.
pub(crate) async fn count_ends(
    client: &impl GenericClient,
    id: BatchId,
    succeeded: i64,
    dead: i64,
    cancelled: i64,
    events: &mut EventRows,
) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE batches SET succeeded = succeeded + $2, dead = dead + $3, \
                 cancelled = cancelled + $4, pending = pending - ($2 + $3 + $4) \
             WHERE id = $1 AND state <> 'completed' RETURNING state, pending",
        )
        .await?;
    let Some(row) = client
        .query_opt(&stmt, &[&id.0, &succeeded, &dead, &cancelled])
        .await?
    else {
        return Ok(());
    };
    let state: String = row.column(0)?;
    let counts = BatchCounts {
        pending: n(&row, 1)?,
        ..BatchCounts::default()
    };
    if batch::completes(BatchState::parse(&state).map_err(corrupt)?, &counts) {
        complete(client, id, events).await?;
    }
    Ok(())
}

/// Uncounts the ends of batch jobs made ready again (`(batch, state they left)`), in batch
/// order; a completed batch keeps its counts.
pub(crate) async fn uncount_ends(
    client: &impl GenericClient,
    revived: impl IntoIterator<Item = (BatchId, JobState)>,
) -> QResult<()> {
    let mut per: std::collections::BTreeMap<BatchId, [i64; 3]> = Default::default();
    for (batch, state) in revived {
        let slot = match state {
            JobState::Succeeded => 0,
            JobState::Dead => 1,
            JobState::Cancelled => 2,
            _ => continue,
        };
        per.entry(batch).or_default()[slot] += 1;
    }
    if per.is_empty() {
        return Ok(());
    }
    let stmt = client
        .prepare_cached(
            "UPDATE batches SET succeeded = GREATEST(succeeded - $2, 0), dead = GREATEST(dead - $3, 0), \
                 cancelled = GREATEST(cancelled - $4, 0), pending = pending + $2 + $3 + $4 \
             WHERE id = $1 AND state <> 'completed'",
        )
        .await?;
    for (batch, [s, d, c]) in per {
        client.execute(&stmt, &[&batch.0, &s, &d, &c]).await?;
    }
    Ok(())
}

/// Completes a batch: its state, its `on_complete` job (context: the counts and the failed
/// job ids), its callback delivery and its `batch.completed` event.
async fn complete(client: &impl GenericClient, id: BatchId, events: &mut EventRows) -> QResult<()> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE batches SET state = 'completed', completed_at = errand_now() \
             WHERE id = $1 AND state <> 'completed' RETURNING {BATCH_COLUMNS}"
        ))
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&id.0]).await? else {
        return Ok(());
    };
    let mut done = batch_from_row(&row)?;
    if let Some(template) = &done.on_complete {
        let stmt = client
            .prepare_cached(
                "SELECT id FROM jobs WHERE batch_id = $1 AND state IN ('dead', 'cancelled') \
                 ORDER BY id LIMIT $2",
            )
            .await?;
        let limit = i64::try_from(batch::MAX_FAILED_IDS).unwrap_or(i64::MAX);
        let failed: Vec<JobId> = client
            .query(&stmt, &[&id.0, &limit])
            .await?
            .iter()
            .map(|r| r.column(0).map(JobId))
            .collect::<QResult<_>>()?;
        let context = batch::completion_context(id, &done.counts, &failed);
        let job = on_complete_job(template);
        let job_id = job.id;
        let inserted = job_write::insert_jobs_with(
            client,
            vec![job],
            Duration::ZERO,
            HashMap::from([(job_id.0, context)]),
        )
        .await?;
        for r in &inserted {
            events.push_job(&r.job, EventType::JobEnqueued)?;
            wake::note(r.job.queue.as_str());
        }
        let stmt = client
            .prepare_cached("UPDATE batches SET on_complete_job_id = $2 WHERE id = $1")
            .await?;
        client.execute(&stmt, &[&id.0, &job_id.0]).await?;
        done.on_complete_job_id = Some(job_id);
    }
    crate::batch_notice::completed(client, &done, events).await?;
    Ok(())
}

fn on_complete_job(t: &JobTemplate) -> NewJob {
    t.new_job(None)
}
