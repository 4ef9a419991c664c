//! Claiming: order, leases, paused queues, kinds, delays.

use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::{JobId, JobKind, JobState, LeaseToken};

use super::support::*;
use super::Ctx;
use crate::{JobClaimParams, JobReleaseManyParams};

/// Higher priority runs first; within a priority, the oldest first.
pub(crate) async fn claim_takes_highest_priority_then_oldest(Ctx { store, .. }: Ctx) {
    let low = new_job("q", "k");
    let mut high = new_job("q", "k");
    high.priority = 10;
    let low2 = new_job("q", "k");
    insert(&store, vec![low.clone()]).await;
    insert(&store, vec![high.clone()]).await;
    insert(&store, vec![low2.clone()]).await;
    let got: Vec<JobId> = claim(&store, "q", 10)
        .await
        .iter()
        .map(|c| c.job.id)
        .collect();
    assert_eq!(got, vec![high.id, low.id, low2.id]);
}

/// A claim counts an attempt, marks the job running and issues a lease.
pub(crate) async fn claim_counts_the_attempt_and_leases(Ctx { store, .. }: Ctx) {
    let j = new_job("q", "k");
    insert(
        &store,
        vec![j.clone(), new_job("q", "k"), new_job("q", "k")],
    )
    .await;
    let claimed = claim(&store, "q", 2).await;
    assert_eq!(claimed.len(), 2, "max bounds the claim");
    let c = &claimed[0];
    assert_eq!(c.job.state, JobState::Running);
    assert_eq!(c.job.attempt, 1);
    assert_eq!(c.job.worker.as_deref(), Some("w1"));
    assert!(c.job.lease_expires_at.is_some());
    assert_eq!(
        claim(&store, "q", 10).await.len(),
        1,
        "claimed jobs are not handed out twice"
    );
    assert!(claim(&store, "q", 10).await.is_empty());
    assert!(claim(&store, "nothing-here", 10).await.is_empty());
}

/// A paused queue hands out nothing until resumed.
pub(crate) async fn claim_skips_paused_queue(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("p", "k")]).await;
    let info = store.queue_pause(&queue("p")).await.expect("pause");
    assert!(info.paused);
    assert!(claim(&store, "p", 10).await.is_empty());
    store.queue_resume(&queue("p")).await.expect("resume");
    assert_eq!(claim(&store, "p", 10).await.len(), 1);
}

/// A claim with kinds takes only those kinds.
pub(crate) async fn claim_filters_by_kind(Ctx { store, .. }: Ctx) {
    let a = new_job("q", "a");
    let b = new_job("q", "b");
    insert(&store, vec![a.clone(), b.clone()]).await;
    let got = store
        .job_claim(JobClaimParams {
            queue: queue("q"),
            worker: "w".into(),
            max: 10,
            lease: Duration::from_secs(30),
            kinds: vec![JobKind::parse("b").expect("kind")],
        })
        .await
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, b.id);
}

/// A delayed job is scheduled and not claimable before its time, and is once the store's
/// clock reaches it.
pub(crate) async fn claim_waits_for_run_at(Ctx { store, clock }: Ctx) {
    let delay = Duration::from_secs(3600);
    let mut later = new_job("q", "k");
    later.run_at = RunAt::After(delay);
    let out = insert(&store, vec![later.clone()]).await;
    assert_eq!(out[0].job.state, JobState::Scheduled);
    assert!(claim(&store, "q", 10).await.is_empty());
    let mut past = new_job("q", "k");
    past.run_at = RunAt::At(0);
    insert(&store, vec![past.clone()]).await;
    let got = claim(&store, "q", 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, past.id);
    clock.advance(delay - EARLY).await;
    assert!(claim(&store, "q", 10).await.is_empty(), "before its time");
    clock.advance(PAST).await;
    let got = claim(&store, "q", 10).await;
    assert_eq!(got.len(), 1, "its time has come");
    assert_eq!(got[0].job.id, later.id);
}

/// A claim whose caller went away is undone: the jobs are ready again, the attempt is not
/// counted and leaves no record; a token that no longer holds its job releases nothing.
pub(crate) async fn release_undoes_a_claim_nobody_heard(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("q", "k"), new_job("q", "k")]).await;
    let first = claim(&store, "q", 1).await.remove(0);
    settle(&store, fail(&first, Some(Duration::ZERO), false))
        .await
        .expect("fail");
    let claimed = claim(&store, "q", 2).await;
    assert_eq!(claimed.len(), 2);
    let forged = (claimed[0].job.id, LeaseToken::new());
    let leases: Vec<_> = claimed.iter().map(|c| (c.job.id, c.lease_token)).collect();
    let none = store
        .job_release_many(JobReleaseManyParams {
            leases: vec![forged],
        })
        .await
        .expect("release");
    assert!(none.is_empty(), "a forged token releases nothing");
    let released = store
        .job_release_many(JobReleaseManyParams {
            leases: leases.clone(),
        })
        .await
        .expect("release");
    assert_eq!(released.len(), 2);
    for job in &released {
        assert_eq!(job.state, JobState::Available);
        assert_eq!(job.lease_expires_at, None);
        let attempts = store.job_attempt_list(job.id).await.expect("attempts");
        assert_eq!(
            attempts.len() as u32,
            job.attempt,
            "no record of the undone attempt"
        );
        assert_eq!(job.started_at, attempts.last().map(|a| a.started_at));
    }
    let retried = store.job_get(first.job.id).await.expect("get");
    assert_eq!(retried.attempt, 1, "the failed attempt still counts");
    assert!(store
        .job_release_many(JobReleaseManyParams { leases })
        .await
        .expect("release")
        .is_empty());
    let again = claim(&store, "q", 2).await;
    let mut attempts: Vec<u32> = again.iter().map(|c| c.job.attempt).collect();
    attempts.sort_unstable();
    assert_eq!(attempts, vec![1, 2]);
}
