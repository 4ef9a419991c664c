//! Pruning finished jobs.

use std::time::Duration;

use errand_core::JobState;

use super::support::*;
use super::Ctx;
use crate::{JobPruneParams, StoreError};

/// Pruning deletes finished jobs of the named states past the retention, with their
/// attempts, and nothing else.
pub(crate) async fn prune_deletes_only_finished_jobs_past_retention(Ctx { store, clock }: Ctx) {
    let retention = Duration::from_secs(3600);
    insert(
        &store,
        vec![new_job("q", "k"), new_job("q", "k"), new_job("q", "k")],
    )
    .await;
    let cs = claim(&store, "q", 2).await;
    let done = settle(&store, complete(&cs[0])).await.expect("complete");
    let dead = settle(&store, fail(&cs[1], None, true))
        .await
        .expect("fail");
    let prune = |states: Vec<JobState>| JobPruneParams {
        states,
        older_than: retention,
        limit: 100,
    };
    clock.advance(retention - EARLY).await;
    let n = store
        .job_prune(prune(vec![JobState::Succeeded, JobState::Dead]))
        .await
        .expect("prune");
    assert_eq!(n, 0, "not yet past the retention");
    clock.advance(PAST).await;
    let n = store
        .job_prune(prune(vec![JobState::Succeeded, JobState::Cancelled]))
        .await
        .expect("prune");
    assert_eq!(n, 1);
    assert!(matches!(
        store.job_get(done.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.job_attempt_list(done.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.job_get(dead.id).await.expect("dead stays").state,
        JobState::Dead
    );
    let queues = store.queue_list().await.expect("queues");
    assert_eq!(
        queues[0].counts.available, 1,
        "unfinished jobs are never pruned"
    );
}
