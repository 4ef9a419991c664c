//! Recording deliveries owed: job callbacks (written with the job's end) and the
//! subscription fan-out both insert through here, so a delivery starts the same way
//! whoever owes it.

use deadpool_postgres::GenericClient;
use errand_core::{Millis, NewDelivery};
use uuid::Uuid;

use crate::fault::QResult;

/// Inserts `deliveries` as pending, with no attempt made and the first attempt due at
/// `now`, in one statement inside the caller's transaction.
pub(crate) async fn insert_deliveries(
    client: &impl GenericClient,
    now: Millis,
    deliveries: &[NewDelivery],
) -> QResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO deliveries (id, subscription_id, job_id, event_type, url, body, state, \
                 attempts, next_at, created_at, updated_at) \
             SELECT u.id, u.sub, u.job, u.ty, u.url, u.body, 'pending', 0, $7, $7, $7 \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[]) \
                 AS u(id, sub, job, ty, url, body)",
        )
        .await?;
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id.0).collect();
    let subs: Vec<Option<Uuid>> = deliveries
        .iter()
        .map(|d| d.subscription.map(|s| s.0))
        .collect();
    let jobs: Vec<Option<Uuid>> = deliveries.iter().map(|d| d.job.map(|j| j.0)).collect();
    let types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
    let urls: Vec<&str> = deliveries.iter().map(|d| d.url.as_str()).collect();
    let bodies: Vec<&str> = deliveries.iter().map(|d| d.body.as_str()).collect();
    client
        .execute(&stmt, &[&ids, &subs, &jobs, &types, &urls, &bodies, &now])
        .await?;
    Ok(())
}
