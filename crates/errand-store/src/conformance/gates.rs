//! Lock keys and concurrency keys: jobs sharing a key take turns for its places; the
//! others wait parked, out of every claim, until a place frees.

use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::JobState;

use super::support::*;
use super::Ctx;

/// A lease that outlasts the hour these cases move the clock by while a job runs.
const LONG_LEASE: Duration = Duration::from_secs(3 * 3600);

/// While a job holds its lock, the next job of that lock is parked and no claim takes it;
/// other locks are not held up; completing the holder hands the lock on.
pub(crate) async fn lock_key_runs_one_job_at_a_time(Ctx { store, .. }: Ctx) {
    let a1 = locked("q", "a");
    let a2 = locked("q", "a");
    let b = locked("q", "b");
    insert(&store, vec![a1.clone(), a2.clone(), b.clone()]).await;
    let first = claim(&store, "q", 10).await;
    assert_eq!(ids(&first), vec![a1.id, b.id], "one job per lock");
    let waiting = store.job_get(a2.id).await.expect("get");
    assert!(waiting.parked, "the second job of a lock waits parked");
    assert_eq!(waiting.state, JobState::Available);
    assert_eq!(waiting.ordering.lock_key.as_deref(), Some("a"));
    assert!(claim(&store, "q", 10).await.is_empty(), "a is held");
    settled(&store, complete(&first[0])).await;
    let next = claim(&store, "q", 10).await;
    assert_eq!(ids(&next), vec![a2.id], "the lock passes on");
    assert!(!next[0].job.parked);
}

/// A failure with a backoff gives the lock up while the job waits for its retry; the
/// retried job comes first once it is due.
pub(crate) async fn lock_key_is_freed_by_a_failure_with_backoff(Ctx { store, clock }: Ctx) {
    let a1 = locked("q", "a");
    let a2 = locked("q", "a");
    let a3 = locked("q", "a");
    insert(&store, vec![a1.clone(), a2.clone(), a3.clone()]).await;
    let c1 = claim(&store, "q", 10).await.remove(0);
    assert_eq!(c1.job.id, a1.id);
    let retry = Duration::from_secs(3600);
    let failed = settled(&store, fail(&c1, Some(retry), false)).await;
    assert_eq!(failed.state, JobState::Scheduled);
    let c2 = claim_with(&store, "q", 10, LONG_LEASE).await;
    assert_eq!(ids(&c2), vec![a2.id], "the waiting retry holds no place");
    clock.advance(retry + Duration::from_secs(1)).await;
    promote(&store).await;
    assert!(
        claim(&store, "q", 10).await.is_empty(),
        "a2 still holds the lock"
    );
    settled(&store, complete(&c2[0])).await;
    let c3 = claim(&store, "q", 10).await;
    assert_eq!(ids(&c3), vec![a1.id], "the retry keeps its place in line");
    settled(&store, complete(&c3[0])).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![a3.id]);
}

/// Cancelling the holder frees the lock; cancelling a waiting job takes it out of line.
pub(crate) async fn lock_key_is_freed_by_cancel(Ctx { store, .. }: Ctx) {
    let a1 = locked("q", "a");
    let a2 = locked("q", "a");
    let a3 = locked("q", "a");
    insert(&store, vec![a1.clone(), a2.clone(), a3.clone()]).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![a1.id]);
    let gone = store.job_cancel(a2.id).await.expect("cancel parked");
    assert_eq!(gone.state, JobState::Cancelled);
    store.job_cancel(a1.id).await.expect("cancel holder");
    let next = claim(&store, "q", 10).await;
    assert_eq!(
        ids(&next),
        vec![a3.id],
        "a3 runs; the cancelled a2 never does"
    );
    settled(&store, complete(&next[0])).await;
    assert!(claim(&store, "q", 10).await.is_empty());
    // The lock is free: a new job of it runs at once.
    let a4 = locked("q", "a");
    insert(&store, vec![a4.clone()]).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![a4.id]);
}

/// A job whose lease ran out comes back holding its lock: it is claimed again before the
/// next job of its lock.
pub(crate) async fn lock_key_survives_lease_expiry(Ctx { store, clock }: Ctx) {
    let a1 = locked("q", "a");
    let a2 = locked("q", "a");
    insert(&store, vec![a1.clone(), a2.clone()]).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![a1.id]);
    clock.advance(LEASE + PAST).await;
    let back = rescue_one(&store, a1.id).await;
    assert_eq!(back.state, JobState::Available, "rescued at once");
    assert!(!back.parked, "it keeps its place");
    let again = claim(&store, "q", 10).await;
    assert_eq!(ids(&again), vec![a1.id], "the rescued job keeps its lock");
    assert_eq!(again[0].job.attempt, 2);
    settled(&store, complete(&again[0])).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![a2.id]);
}

/// A delayed job holds no place while it waits: a later job of its lock runs meanwhile,
/// and the delayed one, once due, waits for the lock like any other.
pub(crate) async fn a_delayed_job_holds_no_place(Ctx { store, clock }: Ctx) {
    let delay = Duration::from_secs(3600);
    let mut later = locked("q", "a");
    later.run_at = RunAt::After(delay);
    let now = locked("q", "a");
    insert(&store, vec![later.clone()]).await;
    insert(&store, vec![now.clone()]).await;
    let c = claim_with(&store, "q", 10, LONG_LEASE).await;
    assert_eq!(ids(&c), vec![now.id]);
    clock.advance(delay + Duration::from_secs(1)).await;
    promote(&store).await;
    assert!(claim(&store, "q", 10).await.is_empty(), "the lock is held");
    let waiting = store.job_get(later.id).await.expect("get");
    assert!(waiting.parked);
    settled(&store, complete(&c[0])).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![later.id]);
}

/// A concurrency key runs up to its limit at once, and the next as soon as one ends.
pub(crate) async fn concurrency_key_runs_up_to_its_limit(Ctx { store, .. }: Ctx) {
    let jobs: Vec<_> = (0..5).map(|_| keyed("q", "c", 3)).collect();
    insert(&store, jobs.clone()).await;
    let first = claim(&store, "q", 10).await;
    assert_eq!(
        ids(&first),
        jobs[..3].iter().map(|j| j.id).collect::<Vec<_>>(),
        "three places, taken in enqueue order"
    );
    assert!(claim(&store, "q", 10).await.is_empty());
    settled(&store, complete(&first[1])).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![jobs[3].id]);
    assert!(claim(&store, "q", 10).await.is_empty());
    let other = keyed("q", "d", 3);
    insert(&store, vec![other.clone()]).await;
    assert_eq!(
        ids(&claim(&store, "q", 10).await),
        vec![other.id],
        "another key has its own places"
    );
}

/// The latest enqueue's limit is the key's: raising it lets waiting jobs in at once.
pub(crate) async fn raising_a_key_limit_admits_more(Ctx { store, .. }: Ctx) {
    let jobs: Vec<_> = (0..4).map(|_| keyed("q", "c", 1)).collect();
    insert(&store, jobs.clone()).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![jobs[0].id]);
    let raise = keyed("q", "c", 3);
    insert(&store, vec![raise.clone()]).await;
    let more = claim(&store, "q", 10).await;
    assert_eq!(
        ids(&more),
        vec![jobs[1].id, jobs[2].id],
        "two more places, for the oldest waiting"
    );
    assert!(claim(&store, "q", 10).await.is_empty());
}

/// A finished job retried by hand joins the back of its lock's line: it waits for the
/// holder, and runs before jobs enqueued after the retry.
pub(crate) async fn a_retried_job_rejoins_its_lock_line(Ctx { store, .. }: Ctx) {
    let a1 = locked("q", "a");
    let a2 = locked("q", "a");
    insert(&store, vec![a1.clone(), a2.clone()]).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![a1.id]);
    store.job_cancel(a1.id).await.expect("cancel");
    let c2 = claim(&store, "q", 10).await;
    assert_eq!(ids(&c2), vec![a2.id]);
    let retried = store.job_retry(a1.id).await.expect("retry");
    assert!(retried.parked, "the lock is held: the retried job waits");
    let a3 = locked("q", "a");
    insert(&store, vec![a3.clone()]).await;
    assert!(claim(&store, "q", 10).await.is_empty());
    settled(&store, complete(&c2[0])).await;
    let c1 = claim(&store, "q", 10).await;
    assert_eq!(ids(&c1), vec![a1.id], "the retry queued before a3");
    settled(&store, complete(&c1[0])).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![a3.id]);
}
