//! Recording webhook deliveries to make (job callbacks, subscription fan-out): pending,
//! due now, in the caller's transaction, with one statement for a batch.

use deadpool_postgres::GenericClient;
use errand_core::{DeliveryState, Millis, NewDelivery};

use crate::fault::QResult;

/// Inserts `deliveries` as pending, no attempt made, due at `now`.
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
             SELECT u.id, u.subscription_id, u.job_id, u.event_type, u.url, u.body, $7, 0, $8, $8, $8 \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[]) \
                 AS u(id, subscription_id, job_id, event_type, url, body)",
        )
        .await?;
    let ids: Vec<uuid::Uuid> = deliveries.iter().map(|d| d.id.0).collect();
    let subscriptions: Vec<Option<uuid::Uuid>> = deliveries
        .iter()
        .map(|d| d.subscription.map(|s| s.0))
        .collect();
    let jobs: Vec<Option<uuid::Uuid>> = deliveries.iter().map(|d| d.job.map(|j| j.0)).collect();
    let types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
    let urls: Vec<&str> = deliveries.iter().map(|d| d.url.as_str()).collect();
    let bodies: Vec<&str> = deliveries.iter().map(|d| d.body.as_str()).collect();
    client
        .execute(
            &stmt,
            &[
                &ids,
                &subscriptions,
                &jobs,
                &types,
                &urls,
                &bodies,
                &DeliveryState::Pending.as_str(),
                &now,
            ],
        )
        .await?;
    Ok(())
}
