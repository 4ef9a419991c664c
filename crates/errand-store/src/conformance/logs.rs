//! Log lines of hosted runs: numbering, fencing, the per-attempt bound, paging, and when
//! lines go.

use std::time::Duration;

use errand_core::{JobId, LeaseToken, LogStream, Millis, NewLogLine};

use super::support::*;
use super::Ctx;
use crate::{
    DeadSelection, JobLogAppendParams, JobLogListParams, JobPruneParams, SharedStore, StoreError,
};

/// Keeps every line.
const UNBOUNDED: (u32, u32) = (u32::MAX, u32::MAX);

/// Lines `from..=to`, numbered in their text, stdout and stderr in turn, printed at `at`.
fn lines(from: u64, to: u64, at: Millis) -> Vec<NewLogLine> {
    (from..=to)
        .map(|n| NewLogLine {
            at: at + n as Millis,
            stream: if n % 2 == 0 {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            },
            line: format!("line {n}"),
        })
        .collect()
}

async fn append(
    store: &SharedStore,
    owner: uuid::Uuid,
    attempt: u32,
    lease_token: Option<LeaseToken>,
    lines: Vec<NewLogLine>,
    (keep_head, keep_tail): (u32, u32),
) -> Result<u64, StoreError> {
    store
        .job_log_append(JobLogAppendParams {
            owner,
            attempt,
            lease_token,
            lines,
            keep_head,
            keep_tail,
        })
        .await
}

async fn list(
    store: &SharedStore,
    owner: uuid::Uuid,
    attempt: Option<u32>,
    after: Option<(u32, u64)>,
    limit: u32,
) -> Vec<(u32, u64)> {
    store
        .job_log_list(JobLogListParams {
            owner,
            attempt,
            after,
            limit,
        })
        .await
        .expect("list logs")
        .into_iter()
        .map(|e| (e.attempt, e.seq))
        .collect()
}

async fn seqs(store: &SharedStore, owner: uuid::Uuid, attempt: u32) -> Vec<u64> {
    list(store, owner, Some(attempt), None, 1000)
        .await
        .into_iter()
        .map(|(_, seq)| seq)
        .collect()
}

/// Lines are numbered per owner and attempt from 1, on across appends; they list by
/// attempt then number with their stream, level, text and time, and page by an exclusive
/// `(attempt, seq)` cursor.
pub(crate) async fn logs_are_numbered_per_attempt_and_paged_by_cursor(Ctx { store, .. }: Ctx) {
    let owner = uuid::Uuid::now_v7();
    let at = 1_790_000_000_000;
    let one = |r: Result<u64, StoreError>| r.expect("append");
    assert_eq!(
        one(append(&store, owner, 1, None, lines(1, 3, at), UNBOUNDED).await),
        3
    );
    assert_eq!(
        one(append(&store, owner, 1, None, lines(4, 5, at), UNBOUNDED).await),
        5
    );
    assert_eq!(
        one(append(&store, owner, 1, None, vec![], UNBOUNDED).await),
        5,
        "an empty batch answers the last number so far"
    );
    assert_eq!(
        one(append(&store, owner, 2, None, lines(1, 2, at), UNBOUNDED).await),
        2,
        "each attempt numbers from 1"
    );
    let all = store
        .job_log_list(JobLogListParams {
            owner,
            attempt: None,
            after: None,
            limit: 100,
        })
        .await
        .expect("list");
    let keys: Vec<(u32, u64)> = all.iter().map(|e| (e.attempt, e.seq)).collect();
    assert_eq!(
        keys,
        vec![(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 1), (2, 2)]
    );
    let fourth = &all[3];
    assert_eq!(fourth.line, "line 4");
    assert_eq!(fourth.stream, LogStream::Stderr);
    assert_eq!(fourth.level, "ERROR");
    assert_eq!(fourth.at.as_millisecond(), at + 4);
    assert_eq!(
        (all[0].stream, all[0].level.as_str()),
        (LogStream::Stdout, "INFO")
    );

    assert_eq!(
        list(&store, owner, None, None, 3).await,
        vec![(1, 1), (1, 2), (1, 3)]
    );
    assert_eq!(
        list(&store, owner, None, Some((1, 3)), 3).await,
        vec![(1, 4), (1, 5), (2, 1)]
    );
    assert_eq!(
        list(&store, owner, None, Some((2, 1)), 3).await,
        vec![(2, 2)]
    );
    assert!(list(&store, owner, None, Some((2, 2)), 3).await.is_empty());
    assert_eq!(
        list(&store, owner, Some(2), None, 10).await,
        vec![(2, 1), (2, 2)]
    );
    assert!(
        list(&store, uuid::Uuid::now_v7(), None, None, 10)
            .await
            .is_empty(),
        "another owner has no lines"
    );
}

/// A fenced append stores nothing unless its job runs under that lease: a wrong token or a
/// job no longer running is `LeaseLost`, no such job `NotFound`.
pub(crate) async fn fenced_log_append_refuses_a_stale_token(Ctx { store, .. }: Ctx) {
    insert(&store, vec![new_job("logs", "k")]).await;
    let c = claim(&store, "logs", 1).await.remove(0);
    let owner = c.job.id.0;
    let at = 1_790_000_000_000;
    assert_eq!(
        append(
            &store,
            owner,
            1,
            Some(c.lease_token),
            lines(1, 1, at),
            UNBOUNDED
        )
        .await
        .expect("the lease holder appends"),
        1
    );
    let stale = append(
        &store,
        owner,
        1,
        Some(LeaseToken::new()),
        lines(2, 2, at),
        UNBOUNDED,
    )
    .await;
    assert!(
        matches!(stale, Err(StoreError::LeaseLost { .. })),
        "{stale:?}"
    );
    let missing = append(
        &store,
        JobId::new().0,
        1,
        Some(c.lease_token),
        lines(1, 1, at),
        UNBOUNDED,
    )
    .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    settle(&store, complete(&c)).await.expect("complete");
    let after = append(
        &store,
        owner,
        1,
        Some(c.lease_token),
        lines(2, 2, at),
        UNBOUNDED,
    )
    .await;
    assert!(
        matches!(after, Err(StoreError::LeaseLost { .. })),
        "a finished job takes no more fenced lines: {after:?}"
    );
    assert_eq!(
        seqs(&store, owner, 1).await,
        vec![1],
        "nothing refused was stored"
    );
}

/// The per-attempt bound keeps the first `keep_head` and the last `keep_tail` lines of an
/// attempt however many appends bring them; the gap in the numbers says how many were
/// dropped, and the last line always stays.
pub(crate) async fn log_bound_keeps_first_and_last_lines_across_appends(Ctx { store, .. }: Ctx) {
    let owner = uuid::Uuid::now_v7();
    let at = 1_790_000_000_000;
    let bound = (2, 3);
    let step = |from, to| {
        let store = store.clone();
        async move {
            append(&store, owner, 1, None, lines(from, to, at), bound)
                .await
                .expect("append")
        }
    };
    assert_eq!(step(1, 4).await, 4);
    assert_eq!(
        seqs(&store, owner, 1).await,
        vec![1, 2, 3, 4],
        "within the bound"
    );
    assert_eq!(step(5, 7).await, 7);
    assert_eq!(seqs(&store, owner, 1).await, vec![1, 2, 5, 6, 7]);
    assert_eq!(step(8, 17).await, 17);
    assert_eq!(seqs(&store, owner, 1).await, vec![1, 2, 15, 16, 17]);
    assert_eq!(
        step(18, 18).await,
        18,
        "numbering goes on past dropped lines"
    );
    let kept = store
        .job_log_list(JobLogListParams {
            owner,
            attempt: Some(1),
            after: None,
            limit: 10,
        })
        .await
        .expect("list");
    let text: Vec<&str> = kept.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(
        text,
        vec!["line 1", "line 2", "line 16", "line 17", "line 18"]
    );

    append(&store, owner, 2, None, lines(1, 1, at), bound)
        .await
        .expect("append");
    assert_eq!(
        seqs(&store, owner, 2).await,
        vec![1],
        "the bound is per attempt"
    );
    append(&store, owner, 3, None, lines(1, 3, at), (0, 0))
        .await
        .expect("append");
    assert_eq!(
        seqs(&store, owner, 3).await,
        vec![3],
        "the last line stays even with no tail asked for"
    );
}

/// A job's lines go with the job (retention, dead purge); lines whose owner is no job (a
/// continuous instance's) go by age alone, and only those.
pub(crate) async fn logs_go_with_their_job_and_instance_logs_by_age(Ctx { store, clock }: Ctx) {
    insert(
        &store,
        vec![new_job("lg", "k"), new_job("lg", "k"), new_job("lg", "k")],
    )
    .await;
    let cs = claim(&store, "lg", 3).await;
    let now = store.clock_now().await.expect("clock");
    for c in &cs {
        append(
            &store,
            c.job.id.0,
            1,
            Some(c.lease_token),
            lines(1, 2, now),
            UNBOUNDED,
        )
        .await
        .expect("append");
    }
    let done = settle(&store, complete(&cs[0])).await.expect("complete");
    let dead = settle(&store, fail(&cs[1], None, true))
        .await
        .expect("dead");
    let running = cs[2].job.id.0;
    let instance = uuid::Uuid::now_v7();
    append(&store, instance, 1, None, lines(1, 2, now), UNBOUNDED)
        .await
        .expect("append");

    let n = store
        .dead_purge_many(DeadSelection::Ids {
            ids: vec![dead.id],
            queue: None,
        })
        .await
        .expect("purge");
    assert_eq!(n, 1);
    assert!(
        seqs(&store, dead.id.0, 1).await.is_empty(),
        "purged with its job"
    );

    let retention = Duration::from_secs(3600);
    clock.advance(retention - EARLY).await;
    assert_eq!(
        store
            .job_log_prune(retention, 100)
            .await
            .expect("log prune"),
        0,
        "not yet past the retention"
    );
    clock.advance(PAST).await;
    assert_eq!(
        store
            .job_log_prune(retention, 100)
            .await
            .expect("log prune"),
        2,
        "the instance's lines only"
    );
    assert!(seqs(&store, instance, 1).await.is_empty());
    assert_eq!(
        seqs(&store, running, 1).await,
        vec![1, 2],
        "a job's lines stay as long as the job"
    );
    assert_eq!(seqs(&store, done.id.0, 1).await, vec![1, 2]);
    let pruned = store
        .job_prune(JobPruneParams {
            states: vec![errand_core::JobState::Succeeded],
            older_than: retention,
            limit: 100,
        })
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    assert!(
        seqs(&store, done.id.0, 1).await.is_empty(),
        "pruned with its job"
    );
    assert_eq!(seqs(&store, running, 1).await, vec![1, 2]);
}
