//! Reads of jobs and attempts.

use deadpool_postgres::GenericClient;
use errand_core::{Attempt, Job, JobId};
use errand_store::{JobListParams, StoreError};

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

/// A page of jobs, newest first. One statement serves every filter combination: a NULL
/// parameter switches its filter off.
pub(crate) async fn list(client: &impl GenericClient, p: &JobListParams) -> QResult<Vec<Job>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs \
             WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2) \
               AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR tags ? $4) \
               AND ($5::uuid IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        ))
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &p.queue.as_ref().map(|q| q.as_str()),
                &p.state.map(|s| s.as_str()),
                &p.kind.as_ref().map(|k| k.as_str()),
                &p.tag,
                &p.before.map(|b| b.0),
                &i64::from(p.limit),
            ],
        )
        .await?;
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
