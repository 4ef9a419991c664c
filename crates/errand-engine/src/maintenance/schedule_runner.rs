//! Fires schedules. Every node runs it; exactly-once per slot comes from the store's
//! unique slot key and the compare-and-set on `next_fire_at`, not from leader election.

use std::sync::Arc;

use errand_store::DueWork;
use tokio_util::sync::CancellationToken;

use crate::due_clock::{run_when_due, Cadence, Pass};
use crate::Engine;

/// Sleeps until the soonest slot of any schedule (or until this node creates or resumes
/// one, or a schedule's job ends and may free a buffered slot), then runs a pass. Other
/// nodes' new schedules are found at least every second; work a pass leaves due (a
/// buffered slot whose run goes on) is looked at again every poll interval, as before.
pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let cadence = Cadence {
        cap: std::time::Duration::from_secs(1),
        floor: engine.config().schedule_pass_interval,
    };
    run_when_due(
        "schedule_runner",
        &engine.fire_due,
        cadence,
        token,
        || async {
            let report = engine.schedule_pass().await?;
            if report.written > 0 {
                tracing::debug!(
                    due = report.due,
                    written = report.written,
                    fired = report.fired,
                    moved = report.moved,
                    "schedule pass"
                );
            }
            Ok(Pass {
                changed: report.written,
                more: false,
            })
        },
        || async {
            let ahead = engine.config().schedule_lead;
            let wait = engine.store().due_in(DueWork::Fire { ahead }).await?;
            if wait.is_none_or(|w| !w.is_zero()) {
                // Nothing is due: the scheduler is alive and nothing is overdue, which is
                // what the pass metrics would say had a pass run now.
                engine.metrics.scheduler_pass(
                    errand_core::time::to_timestamp(errand_core::time::system_now()),
                    0.0,
                );
            }
            Ok(wait)
        },
    )
    .await;
}
