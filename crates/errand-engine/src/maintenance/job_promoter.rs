//! Promotes delayed jobs and backed-off retries: a `scheduled` job whose `run_at` has
//! come becomes `available`, and its queue's waiting claims wake. (Firing cron and
//! interval *schedules* is another service: `schedule_runner`.)

use std::sync::Arc;

use errand_store::{DueWork, StoreError};

use crate::due_clock::{run_when_due, Cadence, Pass};
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// Jobs promoted per store call. At the 100 ms promote interval this moves 50,000 jobs a
/// second, far above what comes due in practice, while one call stays a single short
/// statement; a larger backlog drains over the next ticks.
const PROMOTE_BATCH: u32 = 5000;

/// One pass; returns how many queues gained jobs.
///
/// # Errors
/// The store's error.
pub async fn promote_once(engine: &Engine) -> Result<usize, StoreError> {
    let queues = engine.store().job_promote_due(PROMOTE_BATCH).await?;
    for q in &queues {
        engine.wake(q);
    }
    if !queues.is_empty() {
        engine.counts_changed();
    }
    Ok(queues.len())
}

/// Sleeps until the soonest delayed job or retry comes due (this node's own are noted as
/// they are written; other nodes' are found at least every `promote_interval` ten times
/// over), then promotes what is due.
pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().promote_interval;
    let cadence = Cadence {
        cap: every * 10,
        floor: every,
    };
    run_when_due(
        "job_promoter",
        &engine.promote_due,
        cadence,
        token,
        || async {
            promote_once(&engine).await.map(|changed| Pass {
                changed,
                more: false,
            })
        },
        || engine.store().due_in(DueWork::Promote),
    )
    .await;
}
