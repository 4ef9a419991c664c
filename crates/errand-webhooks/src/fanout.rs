//! The subscription fan-out: reads the event log after the fan-out cursor, makes one
//! delivery per (event, subscription that wants it), and records them while moving the
//! cursor past the stretch, in one compare-and-set (`delivery_fanout`), so a stretch is
//! fanned out once even if two nodes try. Only the holder of the named lease
//! [`LEASE_NAME`] does it, which keeps the others from wasting work on lost CAS races.
//!
//! A cursor that was never set starts at the log's head when there is no subscription yet
//! (a new installation does not deliver history); subscriptions only ever receive events
//! newer than themselves. With no subscription the cursor still moves (to the head, without
//! reading the events), so the log behind it can be pruned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_core::delivery::WebhookBody;
use errand_core::{DeliveryId, NewDelivery, Subscription};
use errand_engine::Engine;
use errand_store::{DeliveryFanoutParams, StoreError};
use tokio_util::sync::CancellationToken;

/// The named lease whose holder fans out.
pub const LEASE_NAME: &str = "errand.fanout";

/// How the fan-out paces itself.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Events read per store call.
    pub page: u32,
    /// Wait between passes that found nothing new (a local job change wakes it sooner).
    pub idle: Duration,
    /// Shortest gap between passes, so a busy node batches events instead of spinning.
    pub min_gap: Duration,
    /// How long the lease lasts; renewed every third of it. A node that dies hands the
    /// fan-out to another after at most this long.
    pub lease_ttl: Duration,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            page: 500,
            idle: Duration::from_millis(500),
            min_gap: Duration::from_millis(20),
            lease_ttl: Duration::from_secs(15),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutPass {
    /// Events read.
    pub events: usize,
    /// Deliveries recorded.
    pub deliveries: usize,
    /// Whether a full page was read (more may wait).
    pub more: bool,
}

/// The deliveries `events` owe `subscriptions`.
pub fn deliveries_for(
    events: &[errand_core::Event],
    subscriptions: &[Subscription],
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for event in events {
        let mut body: Option<String> = None;
        for sub in subscriptions.iter().filter(|s| s.wants(&event.body)) {
            let text = body
                .get_or_insert_with(|| WebhookBody::of(&event.body).text())
                .clone();
            out.push(NewDelivery {
                id: DeliveryId::new(),
                subscription: Some(sub.id),
                job: event.body.job_id(),
                event_type: event.body.event_type,
                url: sub.url.clone(),
                body: text,
            });
        }
    }
    out
}

/// One pass: reads at most one page after the cursor and records its deliveries. Call it
/// only while holding the lease (a concurrent pass elsewhere loses the CAS and writes
/// nothing, so a race costs work, never a double delivery).
///
/// # Errors
/// The store's error; nothing was written.
pub async fn fanout_once(engine: &Engine, page: u32) -> Result<FanoutPass, StoreError> {
    let cursor = engine.delivery_cursor().await?;
    // Read the head before the subscriptions: a subscription created after the list was
    // read only wants events newer than itself, which are after this head.
    let head = engine.event_head().await?;
    let subscriptions = engine.subscription_list().await?;
    let any_active = subscriptions
        .iter()
        .any(|s| s.state == errand_core::SubscriptionState::Active);
    if !any_active {
        // Nothing to deliver: skip to the head without reading, so the log can be pruned.
        let to = match (cursor, head) {
            (None, h) => Some(h.unwrap_or_default()),
            (Some(c), Some(h)) if h > c => Some(h),
            _ => None,
        };
        if let Some(to) = to {
            engine
                .delivery_fanout(DeliveryFanoutParams {
                    from: cursor,
                    to,
                    deliveries: Vec::new(),
                })
                .await?;
        }
        return Ok(FanoutPass::default());
    }
    // A cursor never set with subscriptions already there (created before the first pass):
    // read from the oldest kept event; `Subscription::wants` drops events older than each
    // subscription, so no history is delivered.
    let start = cursor;
    let read = engine.event_read(start, page).await?;
    if let Some(missed) = read.missed_through {
        tracing::warn!(
            cursor = ?start.map(|c| c.to_string()),
            missed_through = %missed,
            "the subscription fan-out fell behind the event log's retention; events up to the gap were not delivered"
        );
    }
    let Some(last) = read.events.last().map(|e| e.id) else {
        // Nothing after the cursor, but a gap may have been reported: move past it.
        if let Some(missed) = read.missed_through.filter(|m| start.is_none_or(|s| *m > s)) {
            engine
                .delivery_fanout(DeliveryFanoutParams {
                    from: start,
                    to: missed,
                    deliveries: Vec::new(),
                })
                .await?;
        }
        return Ok(FanoutPass::default());
    };
    let deliveries = deliveries_for(&read.events, &subscriptions);
    let n = deliveries.len();
    let done = engine
        .delivery_fanout(DeliveryFanoutParams {
            from: start,
            to: last,
            deliveries,
        })
        .await?;
    Ok(FanoutPass {
        events: read.events.len(),
        deliveries: if done { n } else { 0 },
        more: done && read.events.len() >= page as usize,
    })
}

/// Runs the fan-out until `token` fires: waits for the lease, then passes whenever the
/// node's jobs change or every `idle`, renewing the lease as it goes; gives the lease up
/// on the way out.
pub async fn run(engine: Arc<Engine>, config: FanoutConfig, token: CancellationToken) {
    let holder = format!("{}:fanout", engine.node_id());
    let mut changes = engine.subscribe();
    let mut held_since: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        if token.is_cancelled() {
            break;
        }
        let renew_due = held_since.is_none_or(|t| t.elapsed() >= config.lease_ttl / 3);
        if renew_due {
            match engine
                .lease_acquire(LEASE_NAME, &holder, config.lease_ttl)
                .await
            {
                Ok(true) => held_since = Some(Instant::now()),
                Ok(false) => held_since = None,
                Err(e) => {
                    tracing::warn!(error = %e, "fan-out: cannot take its lease");
                    held_since = None;
                }
            }
        }
        let mut more = false;
        if held_since.is_some() {
            match fanout_once(&engine, config.page).await {
                Ok(pass) => {
                    failures = 0;
                    more = pass.more;
                    if pass.deliveries > 0 {
                        tracing::debug!(
                            events = pass.events,
                            deliveries = pass.deliveries,
                            "fan-out pass"
                        );
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "fan-out pass failed");
                    }
                }
            }
        }
        let wait = if more {
            config.min_gap
        } else if held_since.is_some() {
            config.idle
        } else {
            // Someone else holds it: look again when it could have lapsed.
            config.lease_ttl / 3
        };
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            _ = changes.recv(), if held_since.is_some() && !more => {
                tokio::time::sleep(config.min_gap).await;
            }
        }
    }
    if held_since.is_some() {
        let _ = engine.lease_release(LEASE_NAME, &holder).await;
    }
}

#[cfg(test)]
mod tests {
    use errand_core::{EventBody, EventId, EventType, SubscriptionState};

    use super::*;

    fn sub(events: Vec<EventType>, queue: Option<&str>) -> Subscription {
        Subscription {
            id: errand_core::SubscriptionId::new(),
            url: "https://example.com/hook".into(),
            events,
            queue: queue.map(|q| errand_core::QueueName::parse(q).unwrap()),
            kind: None,
            tag: None,
            description: None,
            state: SubscriptionState::Active,
            paused_reason: None,
            consecutive_failures: 0,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn fired(seq: u64) -> errand_core::Event {
        errand_core::Event {
            id: EventId { tx: seq, seq },
            body: EventBody::schedule_fired("s", 0, errand_core::JobId::new(), 1000),
        }
    }

    #[test]
    fn one_delivery_per_event_and_wanting_subscription_with_one_body() {
        let subs = vec![
            sub(vec![EventType::ScheduleFired], None),
            sub(vec![EventType::ScheduleFired, EventType::JobEnqueued], None),
            sub(vec![EventType::JobSucceeded], None),
            // A queue filter passes job events only.
            sub(vec![EventType::ScheduleFired], Some("mail")),
        ];
        let events = vec![fired(1), fired(2)];
        let out = deliveries_for(&events, &subs);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].body, out[1].body);
        assert_ne!(out[0].id, out[1].id);
        assert!(out.iter().all(|d| d.event_type == EventType::ScheduleFired));
        assert_eq!(out[0].subscription, Some(subs[0].id));
        assert_eq!(out[1].subscription, Some(subs[1].id));
        let body: serde_json::Value = serde_json::from_str(&out[0].body).unwrap();
        assert_eq!(body["type"], "schedule.fired");
    }
}
