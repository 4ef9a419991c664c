//! Continuations: jobs that wait for other jobs (`after`), released when their parents
//! succeed (or end at all, with `after_any_end`), cancelled when a parent's end dooms them,
//! down a chain.

use errand_core::flow::doomed_error;
use errand_core::{JobId, JobState};
use serde_json::json;

use super::flows_support::*;
use super::support::*;
use super::Ctx;
use crate::StoreError;

/// A continuation waits `blocked`, out of reach of claims, until its parent succeeds; then
/// it is ready with its parent's end in its context, which the claim hands the worker.
pub(crate) async fn a_continuation_runs_after_its_parent_succeeds(Ctx { store, .. }: Ctx) {
    let parent = new_job("a", "k");
    let child = after("b", &[parent.id], false);
    let ins = insert(&store, vec![parent.clone(), child.clone()]).await;
    assert_eq!(ins[1].job.state, JobState::Blocked);
    assert_eq!(ins[1].job.flow.waiting_for, 1);
    assert_eq!(ins[1].job.flow.after, vec![parent.id]);
    assert!(
        claim(&store, "b", 10).await.is_empty(),
        "a blocked job is not claimed"
    );
    let counts = store.queue_get(&queue("b")).await.expect("queue").counts;
    assert_eq!((counts.blocked, counts.available), (1, 0));
    let p = claim_only(&store, "a").await;
    complete_with(&store, &p, json!({"total": 3})).await;
    let c = claim_only(&store, "b").await;
    assert_eq!(c.job.id, child.id);
    assert_eq!(c.job.flow.waiting_for, 0);
    let ctx = c.job.flow.context.clone().expect("context");
    let mine = &ctx["parents"][parent.id.to_string()];
    assert_eq!(mine["state"], "succeeded");
    assert_eq!(mine["result"], json!({"total": 3}));
}

/// A parent's death cancels its continuation, which cancels its own: each says which job
/// it waited for and how that one ended.
pub(crate) async fn a_dead_parent_cancels_its_continuations_down_the_chain(Ctx { store, .. }: Ctx) {
    let a = new_job("a", "k");
    let b = after("b", &[a.id], false);
    let c = after("c", &[b.id], false);
    insert(&store, vec![a.clone(), b.clone(), c.clone()]).await;
    let pa = claim_only(&store, "a").await;
    kill(&store, &pa).await;
    let jb = store.job_get(b.id).await.expect("b");
    assert_eq!(jb.state, JobState::Cancelled);
    assert_eq!(jb.error, Some(doomed_error(a.id, JobState::Dead)));
    let jc = store.job_get(c.id).await.expect("c");
    assert_eq!(jc.state, JobState::Cancelled);
    assert_eq!(jc.error, Some(doomed_error(b.id, JobState::Cancelled)));
    assert!(claim(&store, "b", 10).await.is_empty());
    assert!(claim(&store, "c", 10).await.is_empty());
}

/// A long chain of continuations is cancelled whole by its first parent's death.
pub(crate) async fn a_long_chain_is_doomed_whole(Ctx { store, .. }: Ctx) {
    let first = new_job("a", "k");
    let mut jobs = vec![first.clone()];
    for _ in 0..300 {
        let prev = jobs.last().expect("prev").id;
        jobs.push(after("chain", &[prev], false));
    }
    insert(&store, jobs.clone()).await;
    let p = claim_only(&store, "a").await;
    kill(&store, &p).await;
    let last = store.job_get(jobs[300].id).await.expect("last");
    assert_eq!(last.state, JobState::Cancelled);
}

/// With `after_any_end`, a parent's death releases the continuation, which sees the
/// death (state and error) in its context.
pub(crate) async fn after_any_end_runs_after_a_death(Ctx { store, .. }: Ctx) {
    let parent = new_job("a", "k");
    let child = after("b", &[parent.id], true);
    insert(&store, vec![parent.clone(), child.clone()]).await;
    let p = claim_only(&store, "a").await;
    kill(&store, &p).await;
    let c = claim_only(&store, "b").await;
    assert!(c.job.flow.after_any_end);
    let ctx = c.job.flow.context.clone().expect("context");
    let mine = &ctx["parents"][parent.id.to_string()];
    assert_eq!(mine["state"], "dead");
    assert_eq!(mine["error"], "boom");
}

/// A parent that already ended counts at insert: succeeded, the continuation is ready at
/// once (with its context); dead, it is inserted cancelled; dead with `after_any_end`, it
/// is ready.
pub(crate) async fn a_parent_already_ended_counts_at_insert(Ctx { store, .. }: Ctx) {
    let ok = new_job("a", "k");
    let bad = new_job("a", "k");
    insert(&store, vec![ok.clone()]).await;
    let p = claim_only(&store, "a").await;
    complete_with(&store, &p, json!(1)).await;
    insert(&store, vec![bad.clone()]).await;
    let p = claim_only(&store, "a").await;
    kill(&store, &p).await;

    let ins = insert(
        &store,
        vec![
            after("b", &[ok.id], false),
            after("b", &[bad.id], false),
            after("b", &[bad.id], true),
            after("b", &[ok.id, bad.id], false),
        ],
    )
    .await;
    assert_eq!(ins[0].job.state, JobState::Available);
    assert_eq!(
        ins[0].job.flow.context.as_ref().expect("context")["parents"][ok.id.to_string()]["result"],
        json!(1)
    );
    assert_eq!(ins[1].job.state, JobState::Cancelled);
    assert_eq!(ins[1].job.error, Some(doomed_error(bad.id, JobState::Dead)));
    assert_eq!(ins[2].job.state, JobState::Available);
    assert_eq!(ins[3].job.state, JobState::Cancelled);
    let ready = claim(&store, "b", 10).await;
    assert_eq!(ids(&ready).len(), 2);
}

/// A continuation naming a job that does not exist is refused, and nothing of the call is
/// stored.
pub(crate) async fn an_unknown_parent_is_refused_and_nothing_stored(Ctx { store, .. }: Ctx) {
    let plain = new_job("a", "k");
    let orphan = after("b", &[JobId::new()], false);
    let out = store
        .job_insert_many(crate::JobInsertManyParams {
            jobs: vec![plain.clone(), orphan.clone()],
            idempotency_window: WINDOW,
        })
        .await;
    assert!(
        matches!(out, Err(StoreError::NotFound { .. })),
        "unknown parent: {out:?}"
    );
    for id in [plain.id, orphan.id] {
        assert!(matches!(
            store.job_get(id).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}

/// A continuation of several parents waits for the last; the released child wakes its
/// queue's claimers through the store's wake-ups.
pub(crate) async fn a_continuation_waits_for_every_parent_and_wakes_its_queue(
    Ctx { store, .. }: Ctx,
) {
    let mut wakeups = store.wakeups();
    let a = new_job("a", "k");
    let b = new_job("a", "k");
    let child = after("woken", &[a.id, b.id], false);
    insert(&store, vec![a.clone(), b.clone(), child.clone()]).await;
    let first = claim(&store, "a", 10).await;
    assert_eq!(first.len(), 2);
    complete_with(&store, &first[0], json!("x")).await;
    let j = store.job_get(child.id).await.expect("child");
    assert_eq!(j.state, JobState::Blocked);
    assert_eq!(j.flow.waiting_for, 1);
    complete_with(&store, &first[1], json!("y")).await;
    let c = claim_only(&store, "woken").await;
    let parents = c.job.flow.context.clone().expect("context")["parents"].clone();
    assert_eq!(parents.as_object().map(|m| m.len()), Some(2));
    let Some(rx) = wakeups.as_mut() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + PROMPT;
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("a wake-up for the released child's queue in time");
        if matches!(&got, Ok(q) if q.as_str() == "woken") {
            break;
        }
    }
}

/// Cancelling a waiting continuation by hand dooms its own continuations.
pub(crate) async fn cancelling_a_waiting_continuation_dooms_its_own(Ctx { store, .. }: Ctx) {
    let a = new_job("a", "k");
    let b = after("b", &[a.id], false);
    let c = after("c", &[b.id], false);
    insert(&store, vec![a.clone(), b.clone(), c.clone()]).await;
    let jb = store.job_cancel(b.id).await.expect("cancel b");
    assert_eq!(jb.state, JobState::Cancelled);
    let jc = store.job_get(c.id).await.expect("c");
    assert_eq!(jc.state, JobState::Cancelled);
    assert_eq!(jc.error, Some(doomed_error(b.id, JobState::Cancelled)));
    let p = claim_only(&store, "a").await;
    complete_with(&store, &p, json!(1)).await;
    assert!(
        claim(&store, "b", 10).await.is_empty(),
        "a cancelled child stays cancelled"
    );
}

/// A waiting continuation holds no place of its lock: another job of the lock runs
/// meanwhile. Released, it joins the lock's line and runs when the lock is free.
pub(crate) async fn a_waiting_continuation_holds_no_lock_until_released(Ctx { store, .. }: Ctx) {
    let parent = new_job("a", "k");
    let mut child = after("b", &[parent.id], false);
    child.ordering.lock_key = Some("L".into());
    insert(&store, vec![parent.clone(), child.clone()]).await;
    insert(&store, vec![locked("b", "L")]).await;
    let holder = claim_only(&store, "b").await;
    assert_ne!(holder.job.id, child.id);
    let p = claim_only(&store, "a").await;
    complete_with(&store, &p, json!(1)).await;
    assert!(
        claim(&store, "b", 10).await.is_empty(),
        "released, it waits for the lock"
    );
    complete_with(&store, &holder, json!(2)).await;
    let c = claim_only(&store, "b").await;
    assert_eq!(c.job.id, child.id);
}

/// A parent revived after its end and ended again counts once for its continuation: the
/// continuation still waits for its other parent.
pub(crate) async fn a_revived_parent_that_ends_again_counts_once(Ctx { store, .. }: Ctx) {
    let a = new_job("a", "k");
    let b = new_job("b", "k");
    let c = after("c", &[a.id, b.id], true);
    insert(&store, vec![a.clone(), b.clone(), c.clone()]).await;
    let pa = claim_only(&store, "a").await;
    kill(&store, &pa).await;
    assert_eq!(store.job_get(c.id).await.expect("c").flow.waiting_for, 1);
    store.job_retry(a.id).await.expect("retry a");
    let pa = claim_only(&store, "a").await;
    kill(&store, &pa).await;
    let jc = store.job_get(c.id).await.expect("c");
    assert_eq!(
        (jc.state, jc.flow.waiting_for),
        (JobState::Blocked, 1),
        "a's second end is not counted again"
    );
    assert!(claim(&store, "c", 10).await.is_empty());
    let pb = claim_only(&store, "b").await;
    complete_with(&store, &pb, json!(null)).await;
    assert_eq!(claim_only(&store, "c").await.job.id, c.id);
}
