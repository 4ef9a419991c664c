//! Deletes slot ledger rows older than a backfill can reach, so `schedule_slots` stays
//! bounded (an every-second schedule adds 86,400 rows a day).

use std::sync::Arc;

use errand_store::{ScheduleSlotPruneParams, StoreError};
use tokio_util::sync::CancellationToken;

use crate::schedules::SLOT_RETENTION;
use crate::Engine;

/// Rows deleted per statement: short locks, and a day of an every-second schedule clears
/// in under ninety statements.
const SLOT_PRUNE_BATCH: u32 = 1000;

/// One pass: deletes in batches until a batch comes back short; returns how many.
///
/// # Errors
/// The store's error.
pub async fn prune_slots_once(engine: &Engine) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = engine
            .store()
            .schedule_slot_prune(ScheduleSlotPruneParams {
                older_than: SLOT_RETENTION,
                limit: SLOT_PRUNE_BATCH,
            })
            .await?;
        total += n as usize;
        if n < u64::from(SLOT_PRUNE_BATCH) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().prune_interval;
    super::every("schedule_slot_cleaner", every, token, || {
        prune_slots_once(&engine)
    })
    .await;
}
