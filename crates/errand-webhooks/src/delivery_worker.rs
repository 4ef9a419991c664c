//! The delivery worker: every node runs one. It claims due deliveries (leased a while
//! longer than an attempt may take, so a node that dies mid-send leaves them due again
//! afterwards: at least once), sends up to `concurrency` at once and settles each: done on
//! a 2xx; otherwise retried with exponential backoff until the delivery's retry time, counted
//! from when it was recorded, runs out, then given up. The store pauses a subscription whose
//! attempts keep failing.
//!
//! It wakes when this node records a delivery due now, and otherwise polls every second
//! (deliveries recorded by other nodes, retries coming due). Once a minute it deletes
//! finished deliveries older than the engine's `retention`.

use std::sync::Arc;
use std::time::Duration;

use errand_core::{ClaimedDelivery, DeliveryAttempt, RetryPolicy};
use errand_engine::Engine;
use errand_store::{DeliveryClaimParams, DeliveryOutcome, DeliverySettleParams};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::sender::Sender;
use crate::WebhookSettings;

/// How the worker sends and retries.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Backoff between attempts: `delivery_backoff` doubling to an hour.
    pub retry: RetryPolicy,
    /// Retry until this long after the delivery was recorded.
    pub retry_for: Duration,
    /// Failures in a row that pause a subscription.
    pub pause_after: u32,
    /// How long a claim keeps others off a delivery: longer than an attempt can take.
    pub lease: Duration,
    /// Poll interval when nothing wakes the worker.
    pub poll: Duration,
}

impl WorkerConfig {
    /// The worker's configuration from the webhook settings.
    pub fn from_settings(s: &WebhookSettings) -> Self {
        Self {
            concurrency: s.concurrency.max(1),
            retry: RetryPolicy {
                base: s.backoff,
                max: crate::MAX_BACKOFF,
                jitter: 0.1,
            },
            retry_for: s.retry_for,
            pause_after: s.pause_after,
            lease: s.timeout + Duration::from_secs(30),
            poll: Duration::from_secs(1),
        }
    }
}

/// What comes after `attempt` at a delivery recorded at `created_at` (`now` on the same
/// clock): delivered on success; otherwise a retry after the backoff of the delivery's
/// attempt count, unless that would fall after `retry_for` from `created_at`.
pub fn next_step(
    config: &WorkerConfig,
    attempt: &DeliveryAttempt,
    created_at: jiff::Timestamp,
    now: jiff::Timestamp,
) -> DeliveryOutcome {
    if attempt.error.is_none() {
        return DeliveryOutcome::Delivered;
    }
    let delay = config.retry.delay(attempt.attempt.max(1));
    let deadline = created_at
        .checked_add(
            jiff::SignedDuration::try_from(config.retry_for).unwrap_or(jiff::SignedDuration::MAX),
        )
        .unwrap_or(jiff::Timestamp::MAX);
    let next = now
        .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(jiff::Timestamp::MAX);
    if next > deadline {
        DeliveryOutcome::GiveUp
    } else {
        DeliveryOutcome::RetryIn(delay)
    }
}

/// Sends one claimed delivery and records the attempt.
async fn deliver(
    engine: Arc<Engine>,
    sender: Arc<Sender>,
    config: Arc<WorkerConfig>,
    claimed: ClaimedDelivery,
) {
    let d = &claimed.delivery;
    let attempt = sender.send(d.id, &d.url, &claimed.body, d.attempts).await;
    let outcome = next_step(&config, &attempt, d.created_at, jiff::Timestamp::now());
    if let Some(e) = &attempt.error {
        tracing::debug!(delivery = %d.id, url = %d.url, attempt = d.attempts, error = %e, "delivery attempt failed");
    }
    let soon = match &outcome {
        DeliveryOutcome::RetryIn(wait) if *wait < config.poll => Some(*wait),
        _ => None,
    };
    let settled = engine
        .delivery_settle(DeliverySettleParams {
            id: d.id,
            lease_token: claimed.lease_token,
            attempt,
            outcome,
            pause_after_failures: config.pause_after,
        })
        .await;
    if let (Ok(_), Some(wait)) = (&settled, soon) {
        // A retry due before the next poll: wake the worker right then.
        let due = engine.deliveries_due();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            due.notify_one();
        });
    }
    if let Err(e) = settled {
        // Its lease ran out (another node may have sent it again) or the store failed: it
        // stays pending and is tried again after its lease.
        tracing::warn!(delivery = %d.id, error = %e, "cannot record a delivery attempt");
    }
}

/// How often finished deliveries past retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Deletes finished deliveries (and their attempts) that ended longer than the engine's
/// `retention` ago (the time succeeded jobs are kept), a batch at a time. Any node may do
/// it; two at once delete different rows or nothing.
async fn prune(engine: &Engine) {
    let keep = engine.config().retention;
    for _ in 0..10 {
        match engine.delivery_prune(keep, 1000).await {
            Ok(n) if n >= 1000 => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune finished deliveries");
                break;
            }
        }
    }
}

/// Runs the worker until `token` fires; attempts under way finish (bounded by the
/// timeout) before it returns.
pub async fn run(
    engine: Arc<Engine>,
    sender: Arc<Sender>,
    config: WorkerConfig,
    token: CancellationToken,
) {
    let config = Arc::new(config);
    let due = engine.deliveries_due();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut failures = 0u32;
    let mut next_prune = tokio::time::Instant::now();
    loop {
        while in_flight.try_join_next().is_some() {}
        if tokio::time::Instant::now() >= next_prune {
            next_prune += PRUNE_EVERY;
            prune(&engine).await;
        }
        let room = config.concurrency.saturating_sub(in_flight.len());
        if room > 0 && !token.is_cancelled() {
            let max = u32::try_from(room).unwrap_or(u32::MAX);
            match engine
                .delivery_claim(DeliveryClaimParams {
                    max,
                    lease: config.lease,
                })
                .await
            {
                Ok(claimed) => {
                    failures = 0;
                    for c in claimed {
                        in_flight.spawn(deliver(engine.clone(), sender.clone(), config.clone(), c));
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "cannot claim deliveries");
                    }
                }
            }
        }
        let notified = due.notified();
        tokio::select! {
            _ = token.cancelled() => break,
            _ = notified => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = tokio::time::sleep(config.poll) => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig::from_settings(&WebhookSettings {
            backoff: Duration::from_secs(5),
            retry_for: Duration::from_secs(3600),
            ..WebhookSettings::default()
        })
    }

    fn attempt(n: u32, error: Option<&str>) -> DeliveryAttempt {
        DeliveryAttempt {
            attempt: n,
            at: jiff::Timestamp::UNIX_EPOCH,
            duration_ms: 1,
            status: None,
            error: error.map(str::to_string),
            response: None,
        }
    }

    fn secs(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn success_is_delivered_failures_back_off_then_give_up() {
        let c = WorkerConfig {
            retry: RetryPolicy {
                jitter: 0.0,
                ..config().retry
            },
            ..config()
        };
        assert_eq!(
            next_step(&c, &attempt(1, None), secs(0), secs(1)),
            DeliveryOutcome::Delivered
        );
        assert_eq!(
            next_step(&c, &attempt(1, Some("HTTP 500")), secs(0), secs(1)),
            DeliveryOutcome::RetryIn(Duration::from_secs(5))
        );
        assert_eq!(
            next_step(&c, &attempt(3, Some("HTTP 500")), secs(0), secs(30)),
            DeliveryOutcome::RetryIn(Duration::from_secs(20))
        );
        // Capped at an hour.
        assert_eq!(
            next_step(&c, &attempt(30, Some("x")), secs(0), secs(0)),
            DeliveryOutcome::RetryIn(Duration::from_secs(3600))
        );
        // The next try would land past an hour after the delivery was recorded.
        assert_eq!(
            next_step(&c, &attempt(2, Some("x")), secs(0), secs(3595)),
            DeliveryOutcome::GiveUp
        );
    }
}
