//! Many callers at once: the store, not the callers' luck, keeps jobs single.

use std::collections::HashSet;

use tokio::task::JoinSet;

use super::support::*;
use super::Ctx;

/// Claimers racing on one queue: every job is handed out, none twice.
pub(crate) async fn concurrent_claimers_never_share_a_job(Ctx { store, .. }: Ctx) {
    const JOBS: usize = 200;
    const CLAIMERS: usize = 16;
    insert(&store, (0..JOBS).map(|_| new_job("q", "k")).collect()).await;
    let mut claimers = JoinSet::new();
    for _ in 0..CLAIMERS {
        let store = store.clone();
        claimers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim(&store, "q", 3).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.job.id));
            }
        });
    }
    let mut seen = HashSet::new();
    while let Some(mine) = claimers.join_next().await {
        for id in mine.expect("claimer") {
            assert!(seen.insert(id), "job {id} was handed out twice");
        }
    }
    assert_eq!(seen.len(), JOBS, "every job is handed out");
}

/// Enqueues racing with one idempotency key: one job, and every caller is told which.
pub(crate) async fn concurrent_enqueues_with_one_key_make_one_job(Ctx { store, .. }: Ctx) {
    const CALLERS: usize = 16;
    let mut callers = JoinSet::new();
    for _ in 0..CALLERS {
        let store = store.clone();
        callers.spawn(async move {
            let mut job = new_job("q", "k");
            job.idempotency_key = Some("once".into());
            insert(&store, vec![job]).await.remove(0)
        });
    }
    let mut ids = HashSet::new();
    let mut inserted = 0;
    while let Some(answer) = callers.join_next().await {
        let answer = answer.expect("caller");
        ids.insert(answer.job.id);
        inserted += usize::from(answer.inserted);
    }
    assert_eq!(inserted, 1, "exactly one enqueue inserts");
    assert_eq!(ids.len(), 1, "every caller gets the one job");
    assert_eq!(claim(&store, "q", 100).await.len(), 1);
}
