//! Marks: a job inserted at most once per `(scope, key)`, ever.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use errand_core::NewJob;
use errand_store::InsertedJob;

use crate::fault::{QResult, RowExt};
use crate::job_write;

/// Inserts the mark and the job inside the caller's transaction; `None` when the mark was
/// already there. Two nodes marking the same key at once: the second waits for the first's
/// commit on the key, then finds it taken.
pub(crate) async fn insert_marked(
    client: &impl GenericClient,
    job: NewJob,
    scope: &str,
    key: &str,
    window: Duration,
) -> QResult<Option<InsertedJob>> {
    let id = job.id;
    let stmt = client
        .prepare_cached(
            "INSERT INTO job_marks (scope, key, job_id, created_at) VALUES ($1, $2, $3, errand_now()) \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    if client.execute(&stmt, &[&scope, &key, &id.0]).await? == 0 {
        return Ok(None);
    }
    let inserted = job_write::insert_many(client, vec![job], window)
        .await?
        .pop();
    if let Some(r) = &inserted {
        if r.job.id != id {
            // An idempotency key gave an earlier job: the mark names that one.
            let stmt = client
                .prepare_cached("UPDATE job_marks SET job_id = $1 WHERE scope = $2 AND key = $3")
                .await?;
            client.execute(&stmt, &[&r.job.id.0, &scope, &key]).await?;
        }
    }
    Ok(inserted)
}

/// Every key of a scope, sorted.
pub(crate) async fn list(client: &impl GenericClient, scope: &str) -> QResult<Vec<String>> {
    let stmt = client
        .prepare_cached("SELECT key FROM job_marks WHERE scope = $1 ORDER BY key")
        .await?;
    let rows = client.query(&stmt, &[&scope]).await?;
    rows.iter().map(|r| r.column(0)).collect()
}

/// Deletes these keys of a scope in one statement; returns how many there were.
pub(crate) async fn delete(
    client: &impl GenericClient,
    scope: &str,
    keys: &[String],
) -> QResult<u64> {
    let stmt = client
        .prepare_cached("DELETE FROM job_marks WHERE scope = $1 AND key = ANY($2)")
        .await?;
    Ok(client.execute(&stmt, &[&scope, &keys]).await?)
}
