//! Settlements in batches: the first settlement of a batch waits at most a window (a few
//! milliseconds) for company, then all go in one `settle` call. A host that is away is
//! retried with backoff for up to a bound; what it then refuses is logged.

use std::sync::Arc;
use std::time::Duration;

use errand_runner::host::{HostError, JobHost, RunSettlement};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::Backoff;

/// Settlements per call at most.
const MAX_BATCH: usize = 500;

/// How long a batch is retried while the host is unavailable.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// Runs until every sender is gone and the last batch is settled.
pub(crate) async fn run(
    host: Arc<dyn JobHost>,
    mut rx: mpsc::UnboundedReceiver<RunSettlement>,
    window: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let until = Instant::now() + window;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        settle(host.as_ref(), batch).await;
    }
}

async fn settle(host: &dyn JobHost, batch: Vec<RunSettlement>) {
    let ids: Vec<_> = batch.iter().map(|s| s.id).collect();
    let give_up = Instant::now() + RETRY_FOR;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        match host.settle(batch.clone()).await {
            Ok(results) => {
                for (id, r) in ids.iter().zip(results) {
                    match r {
                        Ok(()) => {}
                        Err(HostError::LeaseLost) => {
                            tracing::warn!(job = %id, "not settled: the lease was lost (the job runs again elsewhere or was cancelled)");
                        }
                        Err(e) => tracing::warn!(job = %id, error = %e, "not settled"),
                    }
                }
                return;
            }
            Err(HostError::Unavailable(why)) if Instant::now() < give_up => {
                tracing::debug!(error = %why, jobs = ids.len(), "settle: host unavailable, retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = ids.len(), "settle failed; the jobs run again when their leases lapse");
                return;
            }
        }
    }
}
