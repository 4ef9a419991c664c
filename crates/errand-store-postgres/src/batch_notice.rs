//! What a batch's completion tells the outside, in the transaction that completed it: its
//! callback (a delivery of the batch under `batch.completed`,
//! [`errand_core::delivery::batch_callback`]) and a `batch.completed` event in the log.

use deadpool_postgres::GenericClient;
use errand_core::batch::Batch;
use errand_core::time::to_millis;
use errand_core::EventBody;
use errand_store::StoreError;

use crate::delivery_record::insert_deliveries;
use crate::fault::{Fault, QResult};
use crate::transition::EventRows;

/// Records the completion of `batch` (as it is once completed) for its callback and the
/// event log.
pub(crate) async fn completed(
    client: &impl GenericClient,
    batch: &Batch,
    events: &mut EventRows,
) -> QResult<()> {
    let now = batch
        .completed_at
        .map(to_millis)
        .unwrap_or_else(|| to_millis(batch.created_at));
    if let Some(callback) = errand_core::delivery::batch_callback(batch, now) {
        insert_deliveries(client, now, &[callback]).await?;
    }
    let shown = serde_json::to_value(batch)
        .map_err(|e| Fault::Store(StoreError::Internal(e.to_string())))?;
    events.push(&EventBody::batch_completed(shown, now))?;
    Ok(())
}
