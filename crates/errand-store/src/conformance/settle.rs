//! Settling leased jobs: complete, fail, heartbeat, cancel, retry, fencing.

use std::time::Duration;

use errand_core::{AttemptOutcome, JobState, LeaseToken, Progress};
use serde_json::json;

use super::support::*;
use super::{Ctx, DriveClock};
use crate::{
    ClaimedJob, JobClaimParams, JobHeartbeatParams, JobSettleManyParams, SharedStore, StoreError,
};

/// Fencing: a token that is not the current lease's changes nothing.
pub(crate) async fn complete_with_stale_token_is_rejected(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let forged = ClaimedJob {
        job: c.job.clone(),
        lease_token: LeaseToken::new(),
        session: Default::default(),
    };
    assert!(matches!(
        settle(&store, complete(&forged)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        settle(&store, fail(&forged, None, false)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(
        store.job_get(c.job.id).await.expect("get").state,
        JobState::Running
    );
    let done = settle(&store, complete(&c))
        .await
        .expect("the real token completes");
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(matches!(
        settle(&store, complete(&forged)).await,
        Err(StoreError::LeaseLost { .. })
    ));
}

/// A `complete` repeated by the token that completed the job (its first answer was lost) is
/// answered with the job and changes nothing; a `fail` by that token is still refused.
pub(crate) async fn complete_repeated_by_its_token_answers_the_job(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let done = settle_answer(&store, complete(&c)).await.expect("complete");
    assert!(!done.repeat, "the first complete took effect");
    let again = settle_answer(&store, complete(&c))
        .await
        .expect("the same settlement by the same token is a success");
    assert!(
        again.repeat,
        "the repeat is marked, so nobody counts it twice"
    );
    assert_eq!(again.job, done.job, "the repeat changes nothing");
    assert!(matches!(
        settle(&store, fail(&c, None, true)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
}

/// A `fail` repeated by the token whose attempt it failed is answered with the job as it is
/// now, even after the job moved on to another attempt; that attempt is left alone.
pub(crate) async fn fail_repeated_by_its_token_answers_the_job(Ctx { store, .. }: Ctx) {
    let (c, c2) = second_attempt(&store, "q").await;
    assert_eq!(c2.job.attempt, 2);
    let again = settle_answer(&store, fail(&c, Some(Duration::ZERO), false))
        .await
        .expect("the same settlement by the same token is a success");
    assert!(
        again.repeat,
        "the repeat is marked, so nobody counts it twice"
    );
    let again = again.job;
    assert_eq!(again.state, JobState::Running);
    assert_eq!(again.attempt, 2);
    assert_eq!(again.lease_expires_at, c2.job.lease_expires_at);
    assert!(matches!(
        settle(&store, complete(&c)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let attempts = store.job_attempt_list(c.job.id).await.expect("attempts");
    let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        vec![AttemptOutcome::Failed, AttemptOutcome::Running]
    );
    settle(&store, complete(&c2))
        .await
        .expect("the second attempt's token still holds the job");
}

/// A token whose attempt the rescuer ended is stale, not a repeat: its `fail` is refused.
pub(crate) async fn fail_after_rescue_is_not_a_repeat(Ctx { store, clock }: Ctx) {
    let c = claim_and_outlive_the_lease(&store, &*clock).await;
    rescue_one(&store, c.job.id).await;
    assert!(matches!(
        settle(&store, fail(&c, None, false)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let job = store.job_get(c.job.id).await.expect("get");
    assert_eq!(job.state, JobState::Available);
}

/// Claims one job on a [`LEASE`], checks that the rescuer leaves it alone while the lease
/// holds, then moves the store's clock past the lease's end; no rescue ran since.
async fn claim_and_outlive_the_lease(store: &SharedStore, clock: &dyn DriveClock) -> ClaimedJob {
    insert(store, vec![new_job("q", "k")]).await;
    let c = claim_with(store, "q", 1, LEASE).await.remove(0);
    clock.advance(LEASE - EARLY).await;
    assert!(
        rescue(store).await.is_empty(),
        "the lease still holds: nothing to rescue"
    );
    clock.advance(PAST).await;
    c
}

/// After the fenced write: the job is exactly as the claim left it, and still the rescuer's.
async fn assert_untouched_then_rescued(store: &SharedStore, c: &ClaimedJob) {
    let job = store.job_get(c.job.id).await.expect("get");
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.lease_expires_at, c.job.lease_expires_at);
    assert_eq!((job.progress, job.checkpoint), (None, None));
    assert_eq!(job.error, None);
    let rescued = rescue_one(store, c.job.id).await;
    assert_eq!(rescued.state, JobState::Available);
}

fn heartbeat(c: &ClaimedJob, checkpoint: Option<serde_json::Value>) -> JobHeartbeatParams {
    JobHeartbeatParams {
        id: c.job.id,
        lease_token: c.lease_token,
        lease: Some(Duration::from_secs(60)),
        progress: Some(Progress {
            percent: Some(10.0),
            message: None,
        }),
        checkpoint,
    }
}

/// A heartbeat after the lease expired, before any rescue, cannot revive the lease.
pub(crate) async fn heartbeat_after_lease_expiry_is_rejected(Ctx { store, clock }: Ctx) {
    let c = claim_and_outlive_the_lease(&store, &*clock).await;
    assert!(matches!(
        store.job_heartbeat(heartbeat(&c, None)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_untouched_then_rescued(&store, &c).await;
}

/// A checkpoint sent after the lease expired, before any rescue, is not saved.
pub(crate) async fn checkpoint_after_lease_expiry_is_rejected(Ctx { store, clock }: Ctx) {
    let c = claim_and_outlive_the_lease(&store, &*clock).await;
    assert!(matches!(
        store
            .job_heartbeat(heartbeat(&c, Some(json!({"offset": 9}))))
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_untouched_then_rescued(&store, &c).await;
}

/// A `fail` after the lease expired, before any rescue, neither fails nor retries the job.
pub(crate) async fn fail_after_lease_expiry_is_rejected(Ctx { store, clock }: Ctx) {
    let c = claim_and_outlive_the_lease(&store, &*clock).await;
    assert!(matches!(
        settle(&store, fail(&c, Some(Duration::ZERO), false)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_untouched_then_rescued(&store, &c).await;
}

/// A worker whose lease expired cannot complete, even before any rescue ran, nor after the
/// job was claimed again.
pub(crate) async fn complete_after_lease_expiry_is_rejected(Ctx { store, clock }: Ctx) {
    let c = claim_and_outlive_the_lease(&store, &*clock).await;
    assert!(matches!(
        settle(&store, complete(&c)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    rescue_one(&store, c.job.id).await;
    let again = claim(&store, "q", 1).await.remove(0);
    assert_eq!(again.job.attempt, 2);
    assert!(matches!(
        settle(&store, complete(&c)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    settle(&store, complete(&again))
        .await
        .expect("the new lease completes");
}

/// Failures wait for a growing backoff; the last allowed attempt's failure is dead.
pub(crate) async fn fail_retries_with_backoff_then_goes_dead(Ctx { store, .. }: Ctx) {
    let mut j = new_job("q", "k");
    j.max_attempts = 2;
    insert(&store, vec![j.clone()]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let failed = settle(&store, fail(&c, None, false)).await.expect("fail");
    assert_eq!(failed.state, JobState::Scheduled);
    assert_eq!(failed.error.as_deref(), Some("boom"));
    let wait = failed
        .run_at
        .duration_since(failed.updated_at)
        .unsigned_abs();
    assert!(
        wait >= Duration::from_millis(900),
        "backoff after the first failure: {wait:?}"
    );
    assert!(
        claim(&store, "q", 1).await.is_empty(),
        "not before its backoff"
    );
    store.job_retry(j.id).await.expect("run the retry now");
    let c2 = claim(&store, "q", 1).await.remove(0);
    assert_eq!(c2.job.attempt, 2);
    let dead = settle(&store, fail(&c2, None, false)).await.expect("fail");
    assert_eq!(dead.state, JobState::Dead);
    assert!(dead.finished_at.is_some());
}

/// `dead: true` ends the job whatever attempts are left.
pub(crate) async fn fail_with_dead_flag_is_final(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let dead = settle(&store, fail(&c, None, true)).await.expect("fail");
    assert_eq!(dead.state, JobState::Dead);
}

/// `retry_in: 0` makes the job available at once.
pub(crate) async fn fail_with_zero_retry_is_claimable_again(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let back = settle(&store, fail(&c, Some(Duration::ZERO), false))
        .await
        .expect("fail");
    assert_eq!(back.state, JobState::Available);
    let c2 = claim(&store, "q", 1).await.remove(0);
    assert_eq!(c2.job.attempt, 2);
    assert_ne!(
        c2.lease_token, c.lease_token,
        "each claim issues a new fencing token"
    );
}

/// A heartbeat extends the lease and durably records progress and checkpoint.
pub(crate) async fn heartbeat_extends_lease_and_saves_progress(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim_with(&store, "q", 1, Duration::from_secs(1))
        .await
        .remove(0);
    let before = c.job.lease_expires_at.expect("lease");
    let job = store
        .job_heartbeat(JobHeartbeatParams {
            id: c.job.id,
            lease_token: c.lease_token,
            lease: Some(Duration::from_secs(60)),
            progress: Some(Progress {
                percent: Some(40.0),
                message: Some("copying".into()),
            }),
            checkpoint: Some(json!({"offset": 400})),
        })
        .await
        .expect("heartbeat");
    assert!(job.lease_expires_at.expect("lease") > before);
    let got = store.job_get(c.job.id).await.expect("get");
    assert_eq!(got.progress.and_then(|p| p.percent), Some(40.0));
    assert_eq!(got.checkpoint, Some(json!({"offset": 400})));
    let stale = store
        .job_heartbeat(JobHeartbeatParams {
            id: c.job.id,
            lease_token: LeaseToken::new(),
            lease: None,
            progress: None,
            checkpoint: Some(json!("overwrite")),
        })
        .await;
    assert!(matches!(stale, Err(StoreError::LeaseLost { .. })));
    let got = store.job_get(c.job.id).await.expect("get");
    assert_eq!(
        got.checkpoint,
        Some(json!({"offset": 400})),
        "a stale heartbeat changes nothing"
    );
}

/// Cancelling a running job takes the lease away from its worker.
pub(crate) async fn cancel_running_job_fences_its_worker(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("q", "k"), new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let cancelled = store.job_cancel(c.job.id).await.expect("cancel");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(matches!(
        settle(&store, complete(&c)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let waiting = claim(&store, "q", 1).await.remove(0);
    assert_ne!(waiting.job.id, c.job.id);
}

/// A finished job cannot be cancelled.
pub(crate) async fn cancel_finished_job_conflicts(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    settle(&store, complete(&c)).await.expect("complete");
    assert!(matches!(
        store.job_cancel(c.job.id).await,
        Err(StoreError::WrongState(_))
    ));
}

/// A dead job retried runs once more.
pub(crate) async fn retry_dead_job_grants_one_more_attempt(Ctx { store, .. }: Ctx) {
    let mut j = new_job("q", "k");
    j.max_attempts = 1;
    insert(&store, vec![j.clone()]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    settle(&store, fail(&c, None, false)).await.expect("fail");
    let again = store.job_retry(j.id).await.expect("retry");
    assert_eq!(again.state, JobState::Available);
    assert_eq!(again.max_attempts, 2);
    let c2 = claim(&store, "q", 1).await.remove(0);
    assert_eq!(c2.job.attempt, 2);
}

/// Running, available and succeeded jobs are not retried.
pub(crate) async fn retry_running_job_conflicts(Ctx { store, .. }: Ctx) {
    let j = new_job("q", "k");
    insert(&store, vec![j.clone()]).await;
    assert!(matches!(
        store.job_retry(j.id).await,
        Err(StoreError::WrongState(_))
    ));
    claim(&store, "q", 1).await;
    assert!(matches!(
        store.job_retry(j.id).await,
        Err(StoreError::WrongState(_))
    ));
}

/// One settle call: each entry fenced alone, answers in input order.
pub(crate) async fn settle_many_fences_each_entry(Ctx { store, .. }: Ctx) {
    insert(
        &store,
        vec![new_job("q", "k"), new_job("q", "k"), new_job("q", "k")],
    )
    .await;
    let cs = claim(&store, "q", 3).await;
    let forged = ClaimedJob {
        job: cs[1].job.clone(),
        lease_token: LeaseToken::new(),
        session: Default::default(),
    };
    let out = store
        .job_settle_many(JobSettleManyParams {
            settlements: vec![
                complete(&cs[0]),
                complete(&forged),
                fail(&cs[2], None, true),
            ],
            retry_policy: no_jitter(),
        })
        .await
        .expect("settle");
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0].as_ref().expect("first").job.state,
        JobState::Succeeded
    );
    assert!(matches!(out[1], Err(StoreError::LeaseLost { .. })));
    assert_eq!(out[2].as_ref().expect("third").job.state, JobState::Dead);
    assert_eq!(
        store.job_get(cs[1].job.id).await.expect("get").state,
        JobState::Running
    );
}

/// A worker's cycle in one call: the settlements come first, each fenced alone, so the
/// lock the completed job held goes to the same call's claim; a refused entry does not stop
/// the claim.
pub(crate) async fn settle_and_claim_settles_first_then_claims(Ctx { store, .. }: Ctx) {
    let a1 = locked("q", "a");
    let a2 = locked("q", "a");
    let b = locked("q", "b");
    let other = new_job("q", "k");
    insert(&store, vec![a1.clone(), a2.clone(), b.clone()]).await;
    let first = claim(&store, "q", 10).await;
    assert_eq!(ids(&first), vec![a1.id, b.id], "a2 waits for the lock");
    insert(&store, vec![other.clone()]).await;
    let forged = ClaimedJob {
        job: first[1].job.clone(),
        lease_token: LeaseToken::new(),
        session: Default::default(),
    };
    let out = store
        .job_settle_and_claim(
            JobSettleManyParams {
                settlements: vec![complete(&forged), complete(&first[0])],
                retry_policy: no_jitter(),
            },
            JobClaimParams {
                queue: queue("q"),
                worker: "w1".into(),
                max: 10,
                lease: Duration::from_secs(60),
                kinds: vec![],
            },
        )
        .await
        .expect("settle and claim");
    assert_eq!(out.settled.len(), 2);
    assert!(matches!(out.settled[0], Err(StoreError::LeaseLost { .. })));
    assert_eq!(
        out.settled[1].as_ref().expect("second").job.state,
        JobState::Succeeded
    );
    let mut claimed = ids(&out.claimed);
    claimed.sort();
    let mut expected = vec![a2.id, other.id];
    expected.sort();
    assert_eq!(
        claimed, expected,
        "the freed lock's next job is claimed too"
    );
    assert!(out.claimed.iter().all(|c| c.job.state == JobState::Running));
    assert_eq!(
        store.job_get(a1.id).await.expect("get").state,
        JobState::Succeeded
    );
    assert_eq!(
        store.job_get(b.id).await.expect("get").state,
        JobState::Running,
        "the refused entry changed nothing"
    );
}
