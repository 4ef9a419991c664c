//! Fires schedules. Every node runs it; exactly-once per slot comes from the store's
//! unique slot key and the compare-and-set on `next_fire_at`, not from leader election.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Engine;

/// Runs passes until `token` fires: every poll interval, and right at the soonest slot the
/// last pass planned when that comes sooner.
pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let every = engine.config().schedule_pass_interval;
    let mut failures = super::pass_failures::PassFailures::new("schedule_runner");
    loop {
        match engine.schedule_pass().await {
            Ok(report) => {
                failures.succeeded();
                if report.written > 0 {
                    tracing::debug!(
                        due = report.due,
                        written = report.written,
                        fired = report.fired,
                        moved = report.moved,
                        "schedule pass"
                    );
                }
            }
            Err(e) => failures.failed(&e),
        }
        let hint = engine.next_slot_hint.load(Ordering::Relaxed);
        let now = errand_core::time::system_now();
        let until_slot =
            Duration::from_millis(u64::try_from(hint.saturating_sub(now)).unwrap_or(0));
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(every.min(until_slot)) => {}
        }
    }
}
