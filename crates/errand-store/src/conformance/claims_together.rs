//! Claims made together for several takers in one call: each taker's jobs are leased under
//! its own worker name and lease token, as if it had claimed alone.

use std::collections::HashSet;
use std::time::Duration;

use errand_core::queue::QueueSettingsPatch;
use errand_core::JobState;

use super::limits::set_queue;
use super::support::*;
use super::Ctx;
use crate::{
    ClaimTaker, ClaimedJob, JobClaimTogetherParams, JobSettleManyParams, SharedStore, StoreError,
};

fn takers(q: &str, asks: &[(&str, u32)]) -> JobClaimTogetherParams {
    JobClaimTogetherParams {
        queue: queue(q),
        lease: Duration::from_secs(60),
        kinds: vec![],
        takers: asks
            .iter()
            .map(|(worker, max)| ClaimTaker {
                worker: (*worker).into(),
                max: *max,
            })
            .collect(),
    }
}

async fn together(
    store: &SharedStore,
    settlements: Vec<crate::Settlement>,
    claims: JobClaimTogetherParams,
) -> crate::SettledAndClaimedTogether {
    store
        .job_settle_and_claim_together(
            JobSettleManyParams {
                settlements,
                retry_policy: no_jitter(),
            },
            claims,
        )
        .await
        .expect("settle and claim together")
}

/// Each taker's jobs carry its worker name, on the job and its attempt, and its own token.
async fn assert_held_by(store: &SharedStore, claimed: &[ClaimedJob], worker: &str) {
    for c in claimed {
        assert_eq!(c.job.state, JobState::Running);
        assert_eq!(c.job.worker.as_deref(), Some(worker));
        assert_eq!(c.lease_token, claimed[0].lease_token, "one token per taker");
        let stored = store.job_get(c.job.id).await.expect("get");
        assert_eq!(stored.worker.as_deref(), Some(worker));
        let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].worker.as_deref(), Some(worker));
    }
}

/// Settlements first, then each taker in turn gets up to what it asked for under its own
/// name and token; when too few jobs are ready, the first takers get theirs; one taker's
/// token settles none of another's jobs.
pub(crate) async fn claims_together_lease_each_taker_its_own_jobs(Ctx { store, .. }: Ctx) {
    insert(&store, (0..5).map(|_| new_job("q", "k")).collect()).await;
    let first = claim(&store, "q", 1).await.remove(0);
    let out = together(
        &store,
        vec![complete(&first)],
        takers("q", &[("w1", 2), ("w2", 1), ("w3", 3)]),
    )
    .await;
    assert_eq!(out.settled.len(), 1);
    assert_eq!(
        out.settled[0].as_ref().expect("settled").job.state,
        JobState::Succeeded
    );
    let sizes: Vec<usize> = out.claimed.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        vec![2, 1, 1],
        "four were left: the first takers get theirs"
    );
    for (claimed, worker) in out.claimed.iter().zip(["w1", "w2", "w3"]) {
        assert_held_by(&store, claimed, worker).await;
    }
    let all: HashSet<_> = out.claimed.iter().flatten().map(|c| c.job.id).collect();
    assert_eq!(all.len(), 4, "no job goes to two takers");
    let tokens: HashSet<_> = out.claimed.iter().map(|c| c[0].lease_token).collect();
    assert_eq!(tokens.len(), 3, "each taker has its own token");

    // The first taker's token does not settle the second taker's job.
    let theirs = &out.claimed[1][0];
    let forged = ClaimedJob {
        lease_token: out.claimed[0][0].lease_token,
        ..theirs.clone()
    };
    assert!(matches!(
        settle(&store, complete(&forged)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let done = settled(&store, complete(theirs)).await;
    assert_eq!(done.state, JobState::Succeeded);

    // Nothing ready: every taker hears an empty list, and nothing is settled.
    let empty = together(&store, vec![], takers("q", &[("w1", 1), ("w2", 1)])).await;
    assert!(empty.settled.is_empty());
    assert_eq!(empty.claimed.len(), 2);
    assert!(empty.claimed.iter().all(Vec::is_empty));
}

/// Takers claiming together share a queue's concurrency as separate claims would.
pub(crate) async fn claims_together_share_a_queue_limit(Ctx { store, .. }: Ctx) {
    set_queue(
        &store,
        "q",
        QueueSettingsPatch {
            concurrency: Some(Some(3)),
            ..Default::default()
        },
    )
    .await;
    insert(&store, (0..6).map(|_| new_job("q", "k")).collect()).await;
    let out = together(&store, vec![], takers("q", &[("a", 2), ("b", 2)])).await;
    let sizes: Vec<usize> = out.claimed.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 1], "three may run");
    assert_held_by(&store, &out.claimed[0], "a").await;
    assert_held_by(&store, &out.claimed[1], "b").await;
    assert_ne!(out.claimed[0][0].lease_token, out.claimed[1][0].lease_token);
    assert!(claim(&store, "q", 5).await.is_empty(), "the limit is full");
}

/// The priorities of each taker's jobs, in the order it got them.
fn priorities_by_taker(claimed: &[Vec<ClaimedJob>]) -> Vec<Vec<i32>> {
    claimed
        .iter()
        .map(|c| c.iter().map(|c| c.job.priority).collect())
        .collect()
}

/// Jobs on queue `q` with the priorities `(i * step) % n` for i in 0..n (all of 0..n, out
/// of order, when `step` and `n` share no factor).
fn shuffled_priorities(q: &str, n: i32, step: i32) -> Vec<errand_core::NewJob> {
    (0..n)
        .map(|i| {
            let mut j = new_job(q, "k");
            j.priority = (i * step) % n;
            j
        })
        .collect()
}

/// The first takers get the first jobs in claim order (highest priority first).
pub(crate) async fn claims_together_give_the_first_takers_the_first_jobs(Ctx { store, .. }: Ctx) {
    let jobs: Vec<_> = [1, 5, 3]
        .into_iter()
        .map(|priority| {
            let mut j = new_job("q", "k");
            j.priority = priority;
            j
        })
        .collect();
    insert(&store, jobs).await;
    let out = together(&store, vec![], takers("q", &[("w1", 1), ("w2", 2)])).await;
    let priorities = priorities_by_taker(&out.claimed);
    assert_eq!(priorities, vec![vec![5], vec![3, 1]]);
}

/// Claims for more jobs than a store takes in one round (PostgreSQL leases the first 16 in
/// one statement and the rest in another) deal every job to the taker whose slots it falls
/// in, in claim order across the rounds (when no job arrives between them: each round
/// reads the queue as it is then).
pub(crate) async fn claims_together_of_many_deal_across_takers_in_claim_order(
    Ctx { store, .. }: Ctx,
) {
    // Priorities 0..40, inserted out of order.
    insert(&store, shuffled_priorities("q", 40, 17)).await;
    // Slots 1–10, 11–25 (across the first round's end) and 26–35.
    let out = together(
        &store,
        vec![],
        takers("q", &[("w1", 10), ("w2", 15), ("w3", 10)]),
    )
    .await;
    let priorities = priorities_by_taker(&out.claimed);
    assert_eq!(
        priorities,
        vec![
            (30..40).rev().collect::<Vec<_>>(),
            (15..30).rev().collect(),
            (5..15).rev().collect(),
        ]
    );
    for (claimed, worker) in out.claimed.iter().zip(["w1", "w2", "w3"]) {
        assert_held_by(&store, claimed, worker).await;
    }
    let left = claim(&store, "q", 100).await;
    let left: Vec<i32> = left.iter().map(|c| c.job.priority).collect();
    assert_eq!(
        left,
        vec![4, 3, 2, 1, 0],
        "the rest, in order, for one taker"
    );

    // Thirty ready for a claim of twenty (on PostgreSQL 16, then 4 in a second statement
    // whose size is written in as well): slots 1–12 and 13–20.
    insert(&store, shuffled_priorities("q2", 30, 7)).await;
    let out = together(&store, vec![], takers("q2", &[("w1", 12), ("w2", 8)])).await;
    let priorities = priorities_by_taker(&out.claimed);
    assert_eq!(
        priorities,
        vec![(18..30).rev().collect::<Vec<_>>(), (10..18).rev().collect()]
    );
    for (claimed, worker) in out.claimed.iter().zip(["w1", "w2"]) {
        assert_held_by(&store, claimed, worker).await;
    }
}

async fn insert_and_claim(
    store: &SharedStore,
    jobs: Vec<errand_core::NewJob>,
    claims: JobClaimTogetherParams,
) -> Result<crate::InsertedAndClaimed, StoreError> {
    store
        .job_insert_and_claim(
            crate::JobInsertManyParams {
                jobs,
                idempotency_window: WINDOW,
            },
            claims,
        )
        .await
}

/// An insert that claims for waiting takers in the same call: the claim sees the new jobs
/// and is the ordinary one (an older ready job goes first, a delayed one stays), each
/// taker's jobs are its own, the answer gives the jobs as inserted, and the queue's counts
/// follow.
pub(crate) async fn insert_and_claim_hands_new_jobs_to_waiting_takers(Ctx { store, .. }: Ctx) {
    let older = insert(&store, vec![new_job("q", "k")]).await.remove(0).job;
    let mut later = new_job("q", "k");
    later.run_at = errand_core::job::RunAt::After(Duration::from_secs(3600));
    let fresh = [new_job("q", "k"), new_job("q", "k")];
    let fresh_ids: Vec<_> = fresh.iter().map(|j| j.id).collect();
    let jobs = vec![fresh[0].clone(), later.clone(), fresh[1].clone()];
    let out = insert_and_claim(&store, jobs, takers("q", &[("w1", 1), ("w2", 1)]))
        .await
        .expect("insert and claim");
    let states: Vec<_> = out
        .inserted
        .iter()
        .map(|r| (r.inserted, r.job.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (true, JobState::Available),
            (true, JobState::Scheduled),
            (true, JobState::Available)
        ],
        "the jobs as inserted, in input order"
    );
    assert_eq!(out.claimed.len(), 2);
    assert_eq!(
        ids(&out.claimed[0]),
        vec![older.id],
        "the older ready job goes first"
    );
    assert_eq!(ids(&out.claimed[1]), vec![fresh_ids[0]]);
    assert_held_by(&store, &out.claimed[0], "w1").await;
    assert_held_by(&store, &out.claimed[1], "w2").await;
    let left = store.job_get(fresh_ids[1]).await.expect("get");
    assert_eq!(left.state, JobState::Available, "more jobs than takers");
    let delayed = store.job_get(later.id).await.expect("get");
    assert_eq!(
        delayed.state,
        JobState::Scheduled,
        "a delayed job is not claimed"
    );
    super::counts::assert_exact(&store, "an insert that claims").await;

    // A paused queue hands nothing over, and the job is kept.
    store.queue_pause(&queue("q")).await.expect("pause");
    let paused = insert_and_claim(&store, vec![new_job("q", "k")], takers("q", &[("w3", 1)]))
        .await
        .expect("insert on a paused queue");
    assert_eq!(paused.inserted.len(), 1);
    assert!(paused.claimed[0].is_empty());
}

/// An insert that fails keeps nothing, and claims nothing for the takers (a failure of the
/// insert's part; the claim's part runs the same statements as a claim made alone).
pub(crate) async fn insert_and_claim_keeps_nothing_when_the_insert_fails(Ctx { store, .. }: Ctx) {
    let ready = insert(&store, vec![new_job("q", "k")]).await.remove(0).job;
    let mut dup = vec![new_job("q", "k"), new_job("q", "k")];
    dup[1].id = dup[0].id;
    let first = dup[0].id;
    let err = insert_and_claim(&store, dup, takers("q", &[("w1", 2)]))
        .await
        .expect_err("two jobs with one id");
    assert!(
        matches!(err, StoreError::ConstraintViolated(_)),
        "the insert's fault: {err:?}"
    );
    assert!(matches!(
        store.job_get(first).await,
        Err(StoreError::NotFound { .. })
    ));
    let still = store.job_get(ready.id).await.expect("get");
    assert_eq!(still.state, JobState::Available, "nothing was claimed");
    assert!(still.worker.is_none());
}
