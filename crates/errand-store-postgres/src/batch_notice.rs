//! What a batch's completion tells the outside: its callback delivery and its
//! `batch.completed` event.

use deadpool_postgres::GenericClient;
use errand_core::batch::Batch;

use crate::fault::QResult;
use crate::transition::EventRows;

/// Records the completion of `batch` for its callback and the event log.
pub(crate) async fn completed(
    _client: &impl GenericClient,
    _batch: &Batch,
    _events: &mut EventRows,
) -> QResult<()> {
    Ok(())
}
