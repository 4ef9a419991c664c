//! Many claimers at once against locks, concurrency keys and shared limits: the store,
//! not the claimers' luck, keeps every limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use errand_core::queue::QueueSettingsPatch;
use errand_core::throttle::{Limit, LimitScope};
use errand_core::{Job, JobId};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use super::support::*;
use super::Ctx;

/// What a running job counts against, each with its cap.
fn holds(job: &Job) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    if let Some(k) = &job.ordering.lock_key {
        out.push((format!("lock:{k}"), 1));
    }
    if let Some(k) = &job.ordering.concurrency_key {
        out.push((format!("key:{k}"), 3));
    }
    if let Some(k) = &job.ordering.session_key {
        out.push((format!("session:{k}"), 1));
    }
    if job.queue.as_str() == "capped" {
        out.push(("queue:capped".into(), 4));
    }
    if job.kind.as_str() == "single" {
        out.push(("kind:single".into(), 1));
    }
    out
}

/// What the claimers saw: the jobs running under each limit, and each session's jobs in
/// enqueue order with how many have been claimed.
#[derive(Default)]
struct Seen {
    running: HashMap<String, u32>,
    sessions: HashMap<String, (Vec<JobId>, usize)>,
}

/// Sixteen claimers race over two queues of locked, keyed, session, singleton-kind and
/// queue-capped jobs; at no moment do more run under one limit than it allows, every
/// session runs its jobs in enqueue order, and every job is run. A job counts as running
/// from its claim until its settle has returned; the count is kept under a lock held
/// across the settle, so a claim the settle made possible is counted after it.
pub(crate) async fn concurrent_claims_never_exceed_a_limit_or_a_lock(Ctx { store, .. }: Ctx) {
    const CLAIMERS: usize = 16;
    store
        .queue_update(
            &queue("capped"),
            QueueSettingsPatch {
                concurrency: Some(Some(4)),
                ..Default::default()
            },
        )
        .await
        .expect("queue update");
    store
        .limit_put(Limit {
            scope: LimitScope::Kind,
            name: "single".into(),
            concurrency: Some(1),
            rate: None,
        })
        .await
        .expect("limit");
    let mut jobs = Vec::new();
    for i in 0..24 {
        jobs.push(locked("q", &format!("l{}", i % 3)));
        jobs.push(keyed("q", "c", 3));
        jobs.push(in_session("q", &format!("s{}", i % 2)));
        jobs.push(new_job("q", "single"));
        jobs.push(new_job("capped", "k"));
        jobs.push(locked("capped", "l0"));
    }
    let total = jobs.len();
    let mut seen = Seen::default();
    for j in &jobs {
        if let Some(k) = &j.ordering.session_key {
            seen.sessions.entry(k.clone()).or_default().0.push(j.id);
        }
    }
    insert(&store, jobs).await;
    let running = Arc::new(Mutex::new(seen));
    let done = Arc::new(AtomicUsize::new(0));
    let mut claimers = JoinSet::new();
    for n in 0..CLAIMERS {
        let store = store.clone();
        let running = running.clone();
        let done = done.clone();
        claimers.spawn(async move {
            let queues = if n % 2 == 0 {
                ["q", "capped"]
            } else {
                ["capped", "q"]
            };
            // Claims in a row, by this claimer, during which no job anywhere finished.
            let mut idle = 0u32;
            let mut last_done = 0;
            while done.load(Ordering::SeqCst) < total {
                let mut got_any = false;
                for q in queues {
                    let claimed = claim(&store, q, 2).await;
                    got_any |= !claimed.is_empty();
                    let held: Vec<_> = claimed.iter().map(|c| holds(&c.job)).collect();
                    {
                        let mut r = running.lock().await;
                        for (name, cap) in held.iter().flatten() {
                            let n = r.running.entry(name.clone()).or_default();
                            *n += 1;
                            assert!(*n <= *cap, "{n} running under {name}, cap {cap}");
                        }
                        for c in &claimed {
                            if let Some(k) = &c.job.ordering.session_key {
                                let (line, next) = r.sessions.get_mut(k).expect("session");
                                assert_eq!(
                                    line.get(*next),
                                    Some(&c.job.id),
                                    "session {k} runs its jobs in enqueue order"
                                );
                                *next += 1;
                            }
                        }
                    }
                    tokio::task::yield_now().await;
                    for (c, held) in claimed.iter().zip(&held) {
                        let mut r = running.lock().await;
                        settled(&store, complete(c)).await;
                        for (name, _) in held {
                            *r.running.get_mut(name).expect("counted") -= 1;
                        }
                        drop(r);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let now_done = done.load(Ordering::SeqCst);
                idle = if got_any || now_done != last_done {
                    0
                } else {
                    idle + 1
                };
                last_done = now_done;
                assert!(idle < 10_000, "jobs left that no claim takes");
                tokio::task::yield_now().await;
            }
        });
    }
    while let Some(r) = claimers.join_next().await {
        r.expect("claimer");
    }
    assert_eq!(done.load(Ordering::SeqCst), total);
}
