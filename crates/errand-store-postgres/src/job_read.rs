//! Reads of jobs and attempts.

use deadpool_postgres::GenericClient;
use errand_core::{Attempt, Job, JobId, JobState};
use errand_store::{JobListParams, StoreError};
use tokio_postgres::types::ToSql;

use crate::fault::{Fault, QResult};
use crate::job_row::{
    attempt_from_row, job_from_row, jobs_from_rows, ATTEMPT_COLUMNS, JOB_COLUMNS,
};

/// One job.
pub(crate) async fn get(client: &impl GenericClient, id: JobId) -> QResult<Job> {
    let stmt = client
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .await?;
    let row = client
        .query_opt(&stmt, &[&id.0])
        .await?
        .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    job_from_row(&row)
}

/// A page of jobs, newest first. The statement names only the filters given, so the
/// planner sees plain equalities (a `$1 IS NULL OR ...` form would hide them from a cached
/// generic plan) and each filter with an index drives the read: a tag walks `job_tags`
/// (kept by triggers) newest first, a kind walks `jobs_kind`, a queue walks
/// `jobs_queue_list` (with a state, one range; without, [`list_queue`]), and a page stops
/// after `limit` matches instead of scanning every job.
pub(crate) async fn list(client: &impl GenericClient, p: &JobListParams) -> QResult<Vec<Job>> {
    if let (Some(queue), None, None, None) = (&p.queue, p.state, &p.kind, &p.tag) {
        return list_queue(client, queue.as_str(), p.before, p.limit).await;
    }
    let queue = p.queue.as_ref().map(|q| q.as_str());
    let state = p.state.map(|s| s.as_str());
    let kind = p.kind.as_ref().map(|k| k.as_str());
    let before = p.before.map(|b| b.0);
    let limit = i64::from(p.limit);
    let (from, id) = match &p.tag {
        Some(_) => (
            "job_tags JOIN jobs ON jobs.id = job_tags.job_id",
            "job_tags.job_id",
        ),
        None => ("jobs", "jobs.id"),
    };
    let before_column = format!("{id} <");
    let mut filters: Vec<(&str, &(dyn ToSql + Sync))> = Vec::new();
    if let Some(t) = &p.tag {
        filters.push(("job_tags.tag =", t));
    }
    if let Some(q) = &queue {
        filters.push(("queue =", q));
    }
    if let Some(s) = &state {
        filters.push(("state =", s));
    }
    if let Some(k) = &kind {
        filters.push(("kind =", k));
    }
    if let Some(b) = &before {
        filters.push((&before_column, b));
    }
    let clauses: Vec<String> = filters
        .iter()
        .enumerate()
        .map(|(i, (clause, _))| format!("{clause} ${}", i + 1))
        .collect();
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let mut args: Vec<&(dyn ToSql + Sync)> = filters.iter().map(|(_, a)| *a).collect();
    args.push(&limit);
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM {from} {filter} ORDER BY {id} DESC LIMIT ${}",
            args.len()
        ))
        .await?;
    let rows = client.query(&stmt, &args).await?;
    jobs_from_rows(&rows)
}

/// A queue's page when nothing else narrows it: the newest `limit` jobs of each state, each
/// one range of `jobs_queue_list` (queue, state, id), merged and cut to `limit`. It reads
/// at most `limit` index entries per state (and `limit` rows) however many jobs the queue
/// holds; `queue = $1` alone would have the planner sort the queue or walk every newer job.
async fn list_queue(
    client: &impl GenericClient,
    queue: &str,
    before: Option<JobId>,
    limit: u32,
) -> QResult<Vec<Job>> {
    // $1 the queue, $2 the page size, $3 the cursor (when there is one).
    let cursor = if before.is_some() { "AND id < $3" } else { "" };
    let arms: Vec<String> = JobState::ALL
        .iter()
        .map(|s| {
            format!(
                "(SELECT id AS pick FROM jobs WHERE queue = $1 AND state = '{}' {cursor} \
                 ORDER BY id DESC LIMIT $2)",
                s.as_str()
            )
        })
        .collect();
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM ({}) AS picks JOIN jobs ON jobs.id = picks.pick \
             ORDER BY jobs.id DESC LIMIT $2",
            arms.join(" UNION ALL ")
        ))
        .await?;
    let limit = i64::from(limit);
    let before = before.map(|b| b.0);
    let rows = match &before {
        Some(b) => client.query(&stmt, &[&queue, &limit, b]).await?,
        None => client.query(&stmt, &[&queue, &limit]).await?,
    };
    jobs_from_rows(&rows)
}

/// A job's attempts, first first.
pub(crate) async fn attempts(client: &impl GenericClient, id: JobId) -> QResult<Vec<Attempt>> {
    get(client, id).await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM job_attempts WHERE job_id = $1 ORDER BY attempt"
        ))
        .await?;
    client
        .query(&stmt, &[&id.0])
        .await?
        .iter()
        .map(attempt_from_row)
        .collect()
}
