//! Expired leases and timeouts.

use std::time::Duration;

use errand_core::{AttemptOutcome, JobState};

use super::support::*;
use super::Ctx;
use crate::JobHeartbeatParams;

/// An expired lease puts the job back, and the attempt shows as lease_expired.
pub(crate) async fn expired_lease_returns_job_to_queue(Ctx { store, clock }: Ctx) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    clock.advance(LEASE - EARLY).await;
    assert!(rescue(&store).await.is_empty(), "the lease still holds");
    clock.advance(PAST).await;
    let back = rescue_one(&store, c.job.id).await;
    assert_eq!(back.state, JobState::Available);
    assert_eq!(back.attempt, 1, "the attempt counts");
    let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(attempts[0].outcome, AttemptOutcome::LeaseExpired);
    assert_eq!(claim(&store, "q", 1).await.len(), 1);
}

/// An expired lease on the last attempt makes the job dead.
pub(crate) async fn expired_lease_without_attempts_left_is_dead(Ctx { store, clock }: Ctx) {
    let mut j = new_job("q", "k");
    j.max_attempts = 1;
    insert(&store, vec![j]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    clock.advance(LEASE + Duration::from_secs(1)).await;
    let back = rescue_one(&store, c.job.id).await;
    assert_eq!(back.state, JobState::Dead);
}

/// An attempt that outlives its timeout fails even while heartbeating: each heartbeat
/// renews the lease, and the attempt still ends when its timeout has passed since it began.
pub(crate) async fn attempt_past_timeout_is_failed(Ctx { store, clock }: Ctx) {
    let timeout = Duration::from_secs(60);
    let mut j = new_job("q", "k");
    j.timeout = Some(timeout);
    insert(&store, vec![j]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let beat = JobHeartbeatParams {
        id: c.job.id,
        lease_token: c.lease_token,
        lease: Some(LEASE),
        progress: None,
        checkpoint: None,
    };
    // Renewals 20 s apart keep the lease alive past the timeout: the one at 40 s holds it
    // until 70 s.
    for _ in 0..2 {
        clock.advance(Duration::from_secs(20)).await;
        store.job_heartbeat(beat.clone()).await.expect("heartbeat");
    }
    clock
        .advance(timeout - Duration::from_secs(40) - EARLY)
        .await;
    assert!(rescue(&store).await.is_empty(), "within the timeout");
    clock.advance(PAST).await;
    let back = rescue_one(&store, c.job.id).await;
    assert_eq!(
        back.state,
        JobState::Scheduled,
        "a timeout is a failure: it backs off"
    );
    let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(attempts[0].outcome, AttemptOutcome::TimedOut);
}

/// `due_in` tells each maintenance service when it next has work, by the store's clock:
/// nothing waiting is `None`, a time to come is the time left, a time passed is zero; a
/// timeout that ends before the lease counts.
pub(crate) async fn due_in_tells_when_work_comes_due(Ctx { store, clock }: Ctx) {
    use crate::DueWork::{Deadline, Fire, Promote, Rescue};
    for work in [
        Promote,
        Rescue,
        Fire {
            ahead: Duration::ZERO,
        },
        Deadline,
    ] {
        assert_eq!(store.due_in(work).await.expect("due"), None, "{work:?}");
    }
    let hour = Duration::from_secs(3600);
    let mut later = new_job("q", "k");
    later.run_at = errand_core::job::RunAt::After(hour);
    insert(&store, vec![later.clone()]).await;
    let wait = store
        .due_in(Promote)
        .await
        .expect("due")
        .expect("a job waits");
    assert!(wait <= hour && wait > hour - EARLY, "{wait:?}");

    let run_at = store.job_get(later.id).await.expect("get").run_at;
    let fire_at = errand_core::time::to_millis(run_at) + 2 * 3600 * 1000;
    store
        .schedule_put(crate::SchedulePutParams {
            spec: super::schedules::spec("due"),
            next_fire_at: Some(fire_at),
            mode: crate::SchedulePut::Create,
        })
        .await
        .expect("schedule");
    let wait = store
        .due_in(Fire {
            ahead: Duration::ZERO,
        })
        .await
        .expect("due")
        .expect("a slot waits");
    assert!(wait <= 3 * hour && wait > 3 * hour - EARLY, "{wait:?}");

    let mut timed = new_job("r", "k");
    timed.timeout = Some(Duration::from_secs(20));
    insert(&store, vec![new_job("q", "k"), timed]).await;
    claim(&store, "q", 1).await;
    let wait = store
        .due_in(Rescue)
        .await
        .expect("due")
        .expect("a lease runs");
    assert!(wait <= LEASE && wait > LEASE - EARLY, "{wait:?}");
    claim(&store, "r", 1).await;
    let wait = store
        .due_in(Rescue)
        .await
        .expect("due")
        .expect("a lease runs");
    assert!(
        wait <= Duration::from_secs(20) && wait > Duration::from_secs(20) - EARLY,
        "the timeout ends first: {wait:?}"
    );

    clock.advance(hour + PAST).await;
    assert_eq!(
        store.due_in(Promote).await.expect("due"),
        Some(Duration::ZERO)
    );
    assert_eq!(
        store.due_in(Rescue).await.expect("due"),
        Some(Duration::ZERO)
    );
    let wait = store
        .due_in(Fire {
            ahead: Duration::ZERO,
        })
        .await
        .expect("due")
        .expect("a slot waits");
    assert!(wait < 2 * hour, "{wait:?}");
}
