//! Expired leases and timeouts.

use std::time::Duration;

use errand_core::{AttemptOutcome, JobState};

use super::support::*;
use crate::SharedStore;

/// An expired lease puts the job back, and the attempt shows as lease_expired.
pub(crate) async fn expired_lease_returns_job_to_queue(store: SharedStore) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim_with(&store, "q", 1, Duration::from_millis(100))
        .await
        .remove(0);
    let back = rescue_until(&store, c.job.id).await;
    assert_eq!(back.state, JobState::Available);
    assert_eq!(back.attempt, 1, "the attempt counts");
    let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(attempts[0].outcome, AttemptOutcome::LeaseExpired);
    assert_eq!(claim(&store, "q", 1).await.len(), 1);
}

/// An expired lease on the last attempt makes the job dead.
pub(crate) async fn expired_lease_without_attempts_left_is_dead(store: SharedStore) {
    let mut j = new_job("q", "k");
    j.max_attempts = 1;
    insert(&store, vec![j]).await;
    let c = claim_with(&store, "q", 1, Duration::from_millis(100))
        .await
        .remove(0);
    let back = rescue_until(&store, c.job.id).await;
    assert_eq!(back.state, JobState::Dead);
}

/// An attempt that outlives its timeout fails even while heartbeating.
pub(crate) async fn attempt_past_timeout_is_failed(store: SharedStore) {
    let mut j = new_job("q", "k");
    j.timeout = Some(Duration::from_millis(100));
    insert(&store, vec![j]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let back = rescue_until(&store, c.job.id).await;
    assert_eq!(
        back.state,
        JobState::Scheduled,
        "a timeout is a failure: it backs off"
    );
    let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(attempts[0].outcome, AttemptOutcome::TimedOut);
}
