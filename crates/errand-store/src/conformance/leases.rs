//! Named leases: one holder at a time, taken over only after expiry.

use std::time::Duration;

use super::support::*;
use super::Ctx;
use crate::{LeaseAcquireParams, SharedStore};

async fn acquire(store: &SharedStore, name: &str, holder: &str, ttl: Duration) -> bool {
    store
        .lease_acquire(LeaseAcquireParams {
            name: name.into(),
            holder: holder.into(),
            ttl,
        })
        .await
        .expect("acquire")
}

/// A named lease has one holder, who renews it; another holder takes it only once it
/// expired on the store's clock; a release by anyone but the holder changes nothing.
pub(crate) async fn a_named_lease_is_taken_over_only_after_expiry(Ctx { store, clock }: Ctx) {
    let ttl = Duration::from_secs(30);
    assert!(
        acquire(&store, "singleton:tail", "node-a", ttl).await,
        "free"
    );
    assert!(
        !acquire(&store, "singleton:tail", "node-b", ttl).await,
        "held"
    );
    assert!(
        acquire(&store, "other", "node-b", ttl).await,
        "each name is its own lease"
    );
    clock.advance(ttl - EARLY).await;
    assert!(!acquire(&store, "singleton:tail", "node-b", ttl).await);
    assert!(
        acquire(&store, "singleton:tail", "node-a", ttl).await,
        "the holder renews"
    );
    clock.advance(ttl - EARLY).await;
    assert!(
        !acquire(&store, "singleton:tail", "node-b", ttl).await,
        "the renewal holds past the first expiry"
    );
    clock.advance(PAST).await;
    assert!(
        acquire(&store, "singleton:tail", "node-b", ttl).await,
        "expired: taken over"
    );
    assert!(!acquire(&store, "singleton:tail", "node-a", ttl).await);
    store
        .lease_release("singleton:tail", "node-a")
        .await
        .expect("release");
    assert!(
        !acquire(&store, "singleton:tail", "node-a", ttl).await,
        "only the holder releases"
    );
    store
        .lease_release("singleton:tail", "node-b")
        .await
        .expect("release");
    assert!(
        acquire(&store, "singleton:tail", "node-a", ttl).await,
        "released: free again"
    );
}
