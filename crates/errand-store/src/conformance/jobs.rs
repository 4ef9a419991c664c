//! Inserting, reading, listing jobs and their attempts.

use std::time::Duration;

use errand_core::{AttemptOutcome, JobId, JobKind, JobState, LeaseToken, NewJob};
use serde_json::json;

use super::support::*;
use super::Ctx;
use crate::{JobHeartbeatParams, JobInsertManyParams, JobListParams, StoreError};

/// A job inserted and read back keeps every field.
pub(crate) async fn insert_then_get_round_trips(Ctx { store, .. }: Ctx) {
    let mut job = new_job("default", "mail.send");
    job.priority = 7;
    job.tags = vec!["a".into(), "b".into()];
    job.timeout = Some(Duration::from_secs(9));
    job.payload = json!({"to": "x@example.com", "nested": [1, 2, {"k": null}], "uni": "é✓"});
    let out = insert(&store, vec![job.clone()]).await;
    assert!(out[0].inserted);
    let got = store.job_get(job.id).await.expect("get");
    assert_eq!(
        got, out[0].job,
        "the insert's answer is what a read returns"
    );
    assert_eq!(got.state, JobState::Available);
    assert_eq!(got.payload, job.payload);
    assert_eq!(got.priority, 7);
    assert_eq!(got.tags, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(got.timeout_ms, Some(9000));
    assert_eq!(got.attempt, 0);
    assert_eq!(got.max_attempts, 3);
}

/// A batch that cannot be stored whole stores nothing.
pub(crate) async fn insert_many_is_all_or_nothing(Ctx { store, .. }: Ctx) {
    let a = new_job("default", "k");
    let mut b = new_job("default", "k");
    b.id = a.id;
    let err = store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![a.clone(), b],
            idempotency_window: WINDOW,
        })
        .await;
    assert!(err.is_err(), "a duplicate id must fail the batch");
    assert!(matches!(
        store.job_get(a.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A repeated idempotency key, in one batch or later, answers with the first job.
pub(crate) async fn idempotency_key_returns_the_first_job(Ctx { store, .. }: Ctx) {
    let mut a = new_job("default", "k");
    a.idempotency_key = Some("order-1".into());
    let mut b = new_job("default", "k");
    b.idempotency_key = Some("order-1".into());
    let out = insert(&store, vec![a.clone(), b.clone()]).await;
    assert!(out[0].inserted);
    assert!(!out[1].inserted);
    assert_eq!(out[1].job.id, a.id);
    let mut c = new_job("default", "k");
    c.idempotency_key = Some("order-1".into());
    let again = insert(&store, vec![c.clone()]).await;
    assert!(!again[0].inserted);
    assert_eq!(again[0].job.id, a.id);
    assert!(matches!(
        store.job_get(c.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A key deduplicates for its window, measured on the store's clock; once the window has
/// passed, the same key enqueues a new job.
pub(crate) async fn idempotency_key_is_released_after_its_window(Ctx { store, clock }: Ctx) {
    let window = Duration::from_secs(60);
    let keyed = || {
        let mut j = new_job("default", "k");
        j.idempotency_key = Some("once".into());
        j
    };
    let insert_keyed = |j: NewJob| {
        let store = store.clone();
        async move {
            store
                .job_insert_many(JobInsertManyParams {
                    jobs: vec![j],
                    idempotency_window: window,
                })
                .await
                .expect("insert")
                .remove(0)
        }
    };
    let a = keyed();
    assert!(insert_keyed(a.clone()).await.inserted);
    clock.advance(window - EARLY).await;
    let within = insert_keyed(keyed()).await;
    assert!(!within.inserted, "within the window");
    assert_eq!(within.job.id, a.id);
    clock.advance(PAST).await;
    let b = keyed();
    let out = insert_keyed(b.clone()).await;
    assert!(out.inserted, "an expired key must not deduplicate");
    assert_eq!(out.job.id, b.id);
    assert!(store.job_get(a.id).await.is_ok(), "the first job stays");
}

/// Unknown ids are `NotFound` everywhere.
pub(crate) async fn get_unknown_job_is_not_found(Ctx { store, .. }: Ctx) {
    let id = JobId::new();
    assert!(matches!(
        store.job_get(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.job_cancel(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.job_retry(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.job_attempt_list(id).await,
        Err(StoreError::NotFound { .. })
    ));
    let hb = store
        .job_heartbeat(JobHeartbeatParams {
            id,
            lease_token: LeaseToken::new(),
            lease: None,
            progress: None,
            checkpoint: None,
        })
        .await;
    assert!(matches!(hb, Err(StoreError::NotFound { .. })));
}

/// Each attempt is kept with its worker and outcome.
pub(crate) async fn attempts_are_recorded(Ctx { store, .. }: Ctx) {
    let (c, c2) = second_attempt(&store, "q").await;
    settle(&store, complete(&c2)).await.expect("complete");
    let a = store.job_attempt_list(c.job.id).await.expect("attempts");
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].attempt, a[0].outcome), (1, AttemptOutcome::Failed));
    assert_eq!(a[0].error.as_deref(), Some("boom"));
    assert_eq!((a[1].attempt, a[1].outcome), (2, AttemptOutcome::Succeeded));
    assert_eq!(a[1].worker.as_deref(), Some("w1"));
    assert!(a[1].finished_at.is_some());
}

/// Listing filters by queue, state, kind and tag, newest first, with a cursor.
pub(crate) async fn list_filters_and_paginates(Ctx { store, .. }: Ctx) {
    let mut jobs = Vec::new();
    for i in 0..5 {
        let mut j = new_job(
            if i % 2 == 0 { "even" } else { "odd" },
            if i < 3 { "early" } else { "late" },
        );
        if i == 4 {
            j.tags = vec!["vip".into()];
        }
        jobs.push(j);
    }
    for j in &jobs {
        insert(&store, vec![j.clone()]).await;
    }
    let all = store
        .job_list(JobListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    let ids: Vec<JobId> = all.iter().map(|j| j.id).collect();
    let mut expected: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    expected.reverse();
    assert_eq!(ids, expected, "newest first");
    let page1 = store
        .job_list(JobListParams {
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("list");
    let page2 = store
        .job_list(JobListParams {
            limit: 2,
            before: Some(page1[1].id),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page2.iter().map(|j| j.id).collect::<Vec<_>>(),
        expected[2..4].to_vec()
    );
    let even = store
        .job_list(JobListParams {
            queue: Some(queue("even")),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(even.len(), 3);
    let late = store
        .job_list(JobListParams {
            kind: Some(JobKind::parse("late").expect("kind")),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(late.len(), 2);
    let vip = store
        .job_list(JobListParams {
            tag: Some("vip".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        vip.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![jobs[4].id]
    );
    claim(&store, "odd", 1).await;
    let running = store
        .job_list(JobListParams {
            state: Some(JobState::Running),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(running.len(), 1);
}

/// Every page of a filtered listing, following the cursor from the newest job.
async fn all_pages(store: &crate::SharedStore, filter: JobListParams) -> Vec<JobId> {
    let mut ids = Vec::new();
    loop {
        let page = store
            .job_list(JobListParams {
                before: ids.last().copied(),
                ..filter.clone()
            })
            .await
            .expect("list");
        let full = page.len() == filter.limit as usize;
        ids.extend(page.iter().map(|j| j.id));
        assert!(ids.len() <= 1000, "the cursor never reaches the end");
        if !full {
            return ids;
        }
    }
}

/// A queue alone (its jobs in every state, read as the states' ranges merged) and a queue
/// with a state page newest first through exactly the matching jobs.
pub(crate) async fn list_by_queue_pages_newest_first_across_states(Ctx { store, .. }: Ctx) {
    let mut jobs = Vec::new();
    for i in 0..17 {
        let mut j = new_job(if i % 4 == 3 { "other" } else { "mixed" }, "k");
        if i % 5 == 4 {
            j.run_at = errand_core::job::RunAt::After(Duration::from_secs(3600));
        }
        jobs.push(j);
    }
    insert(&store, jobs[..8].to_vec()).await;
    for j in &jobs[8..] {
        insert(&store, vec![j.clone()]).await;
    }
    // The oldest ready jobs of the queue are claimed: one succeeds, two stay running.
    let claimed = claim(&store, "mixed", 3).await;
    assert_eq!(claimed.len(), 3);
    settle(&store, complete(&claimed[0]))
        .await
        .expect("complete");
    let mut states = Vec::new();
    for j in &jobs {
        states.push(store.job_get(j.id).await.expect("job").state);
    }
    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<JobId> {
        (0..jobs.len())
            .rev()
            .filter(|&i| keep(i))
            .map(|i| jobs[i].id)
            .collect()
    };
    let mixed = |i: usize| jobs[i].queue.as_str() == "mixed";
    assert!(
        [
            JobState::Scheduled,
            JobState::Available,
            JobState::Running,
            JobState::Succeeded
        ]
        .iter()
        .all(|s| (0..jobs.len()).any(|i| mixed(i) && states[i] == *s)),
        "the queue holds jobs in four states: {states:?}"
    );
    let in_queue = JobListParams {
        queue: Some(queue("mixed")),
        limit: 3,
        ..Default::default()
    };
    assert_eq!(all_pages(&store, in_queue.clone()).await, expect(&mixed));
    for state in JobState::ALL {
        assert_eq!(
            all_pages(
                &store,
                JobListParams {
                    state: Some(state),
                    ..in_queue.clone()
                }
            )
            .await,
            expect(&|i| mixed(i) && states[i] == state),
            "{state}"
        );
    }
    assert!(all_pages(
        &store,
        JobListParams {
            queue: Some(queue("nobody")),
            ..in_queue
        }
    )
    .await
    .is_empty());
}

/// Tag and kind filters (alone, together, and with a queue and a state) page newest first
/// through exactly the matching jobs, and a deleted job leaves its tag's listing.
pub(crate) async fn list_by_tag_and_kind_pages_newest_first(Ctx { store, .. }: Ctx) {
    let mut jobs = Vec::new();
    for i in 0..23 {
        let mut j = new_job(
            if i % 2 == 0 { "even" } else { "odd" },
            ["a", "b", "c"][i % 3],
        );
        j.tags = match i % 4 {
            0 => vec![],
            1 => vec!["red".into()],
            2 => vec!["red".into(), "blue".into()],
            // A tag given twice is one tag.
            _ => vec!["blue".into(), "blue".into()],
        };
        jobs.push(j);
    }
    // One batch and then one job at a time: both insert paths keep the tag index.
    insert(&store, jobs[..10].to_vec()).await;
    for j in &jobs[10..] {
        insert(&store, vec![j.clone()]).await;
    }
    let expect = |keep: &dyn Fn(&NewJob) -> bool| -> Vec<JobId> {
        jobs.iter()
            .rev()
            .filter(|j| keep(j))
            .map(|j| j.id)
            .collect()
    };
    let has = |j: &NewJob, t: &str| j.tags.iter().any(|x| x == t);
    let kind = |k: &str| Some(JobKind::parse(k).expect("kind"));
    let by = |f: JobListParams| JobListParams { limit: 3, ..f };
    let red = by(JobListParams {
        tag: Some("red".into()),
        ..Default::default()
    });
    assert_eq!(
        all_pages(&store, red.clone()).await,
        expect(&|j| has(j, "red"))
    );
    assert_eq!(
        all_pages(
            &store,
            by(JobListParams {
                tag: Some("blue".into()),
                ..Default::default()
            })
        )
        .await,
        expect(&|j| has(j, "blue")),
        "a job tagged blue twice is listed once"
    );
    let b = by(JobListParams {
        kind: kind("b"),
        ..Default::default()
    });
    assert_eq!(
        all_pages(&store, b).await,
        expect(&|j| j.kind.as_str() == "b")
    );
    let red_c_even = by(JobListParams {
        tag: Some("red".into()),
        kind: kind("c"),
        queue: Some(queue("even")),
        ..Default::default()
    });
    assert_eq!(
        all_pages(&store, red_c_even).await,
        expect(&|j| has(j, "red") && j.kind.as_str() == "c" && j.queue.as_str() == "even")
    );
    assert!(all_pages(
        &store,
        by(JobListParams {
            tag: Some("green".into()),
            ..Default::default()
        })
    )
    .await
    .is_empty());
    // Claim every odd job: a tag and a state, and a kind and a state, still page exactly.
    let claimed = claim(&store, "odd", 100).await;
    let running = |j: &NewJob| j.queue.as_str() == "odd";
    assert_eq!(
        all_pages(
            &store,
            by(JobListParams {
                tag: Some("red".into()),
                state: Some(JobState::Running),
                ..Default::default()
            })
        )
        .await,
        expect(&|j| has(j, "red") && running(j))
    );
    assert_eq!(
        all_pages(
            &store,
            by(JobListParams {
                kind: kind("a"),
                state: Some(JobState::Available),
                ..Default::default()
            })
        )
        .await,
        expect(&|j| j.kind.as_str() == "a" && !running(j))
    );
    // Fail the running red jobs for good and purge them: they leave the tag's listing.
    for c in claimed
        .iter()
        .filter(|c| c.job.tags.iter().any(|t| t == "red"))
    {
        settle(&store, fail(c, None, true)).await.expect("fail");
    }
    store
        .dead_purge_many(crate::DeadSelection::All)
        .await
        .expect("purge");
    assert_eq!(
        all_pages(&store, red).await,
        expect(&|j| has(j, "red") && !running(j))
    );
}
