//! Batches: jobs counted as they end, one `on_complete` job when the last of a closed
//! batch ends (with the counts and the failed ids), open batches taking more jobs until
//! closed, and racing ends completing a batch, or releasing a join, once.

use std::collections::HashSet;

use errand_core::batch::{BatchState, NewBatch};
use errand_core::{BatchId, JobState, NewJob};
use serde_json::json;

use super::flows_support::*;
use super::support::*;
use super::Ctx;
use crate::{BatchListParams, JobInsertManyParams, SharedStore, StoreError};

fn jobs(q: &str, n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|_| {
            let mut j = new_job(q, "k");
            j.max_attempts = 1;
            j
        })
        .collect()
}

fn params(jobs: Vec<NewJob>) -> JobInsertManyParams {
    JobInsertManyParams {
        jobs,
        idempotency_window: WINDOW,
    }
}

fn in_batch(id: BatchId, mut js: Vec<NewJob>) -> Vec<NewJob> {
    for j in &mut js {
        j.flow.batch = Some(id);
    }
    js
}

fn new_batch(open: bool, done_queue: Option<&str>) -> NewBatch {
    NewBatch {
        id: BatchId::new(),
        on_complete: done_queue.map(template),
        callback_url: None,
        open,
    }
}

async fn create_batch(store: &SharedStore, b: &NewBatch, js: Vec<NewJob>) -> crate::BatchWrite {
    store
        .batch_create(b.clone(), params(in_batch(b.id, js)))
        .await
        .expect("batch create")
}

/// A closed batch of ten: seven succeed, three die; when the last ends the batch completes
/// and its `on_complete` job is enqueued once, with the counts and the dead jobs' ids.
pub(crate) async fn a_batch_completes_once_with_counts_and_failed_ids(Ctx { store, .. }: Ctx) {
    let b = new_batch(false, Some("done"));
    let w = create_batch(&store, &b, jobs("q", 10)).await;
    assert_eq!(w.batch.state, BatchState::Closed);
    assert_eq!((w.batch.counts.total, w.batch.counts.pending), (10, 10));
    assert_eq!(w.jobs.len(), 10);
    assert_eq!(w.jobs[0].job.flow.batch_id, Some(b.id));
    let claimed = claim(&store, "q", 10).await;
    let mut failed = HashSet::new();
    for c in &claimed[..3] {
        kill(&store, c).await;
        failed.insert(c.job.id.to_string());
    }
    for c in &claimed[3..9] {
        complete_with(&store, c, json!(1)).await;
    }
    assert!(
        claim(&store, "done", 10).await.is_empty(),
        "not before the last end"
    );
    assert_eq!(
        store.batch_get(b.id).await.expect("get").state,
        BatchState::Closed
    );
    complete_with(&store, &claimed[9], json!(1)).await;
    let done = claim_only(&store, "done").await;
    let ctx = done.job.flow.context.clone().expect("context")["batch"].clone();
    assert_eq!(ctx["total"], 10);
    assert_eq!(ctx["succeeded"], 7);
    assert_eq!(ctx["dead"], 3);
    assert_eq!(ctx["cancelled"], 0);
    let ids: HashSet<String> = ctx["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids, failed);
    let got = store.batch_get(b.id).await.expect("get");
    assert_eq!(got.state, BatchState::Completed);
    assert_eq!(got.on_complete_job_id, Some(done.job.id));
    assert_eq!(
        (got.counts.pending, got.counts.succeeded, got.counts.dead),
        (0, 7, 3)
    );
    assert!(got.completed_at.is_some());
    // A completed batch stays completed: reviving one of its dead jobs changes nothing.
    store.job_retry(claimed[0].job.id).await.expect("retry");
    let again = store.batch_get(b.id).await.expect("get");
    assert_eq!(again.state, BatchState::Completed);
    assert_eq!(again.counts, got.counts);
}

/// An open batch takes more jobs and cannot complete until closed; a retried dead job of
/// an open batch is uncounted; closing completes it when nothing is pending; a completed
/// batch takes no jobs.
pub(crate) async fn an_open_batch_takes_jobs_until_closed(Ctx { store, .. }: Ctx) {
    let b = new_batch(true, Some("done"));
    let w = create_batch(&store, &b, jobs("q", 2)).await;
    assert_eq!(w.batch.state, BatchState::Open);
    let two = claim(&store, "q", 10).await;
    kill(&store, &two[0]).await;
    store.job_retry(two[0].job.id).await.expect("retry");
    let got = store.batch_get(b.id).await.expect("get");
    assert_eq!((got.counts.pending, got.counts.dead), (2, 0), "uncounted");
    let again = claim_only(&store, "q").await;
    complete_with(&store, &again, json!(1)).await;
    complete_with(&store, &two[1], json!(1)).await;
    assert_eq!(
        store.batch_get(b.id).await.expect("get").state,
        BatchState::Open,
        "an open batch does not complete"
    );
    let added = store
        .batch_add(b.id, params(in_batch(b.id, jobs("q", 1))))
        .await
        .expect("add");
    assert_eq!(added.batch.counts.total, 3);
    let closed = store.batch_close(b.id).await.expect("close");
    assert_eq!(closed.state, BatchState::Closed);
    assert!(closed.closed_at.is_some());
    let last = claim_only(&store, "q").await;
    complete_with(&store, &last, json!(1)).await;
    assert_eq!(
        store.batch_get(b.id).await.expect("get").state,
        BatchState::Completed
    );
    assert_eq!(claim(&store, "done", 10).await.len(), 1);
    let refused = store
        .batch_add(b.id, params(in_batch(b.id, jobs("q", 1))))
        .await;
    assert!(
        matches!(refused, Err(StoreError::WrongState(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.batch_close(b.id).await.expect("close again").state,
        BatchState::Completed
    );
    assert!(matches!(
        store.batch_get(BatchId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A closed batch created empty completes at once, its `on_complete` job enqueued; an open
/// empty one completes when closed.
pub(crate) async fn an_empty_closed_batch_completes_at_once(Ctx { store, .. }: Ctx) {
    let b = new_batch(false, Some("done"));
    let w = create_batch(&store, &b, vec![]).await;
    assert_eq!(w.batch.state, BatchState::Completed);
    assert!(w.batch.on_complete_job_id.is_some());
    let done = claim_only(&store, "done").await;
    assert_eq!(
        done.job.flow.context.clone().expect("ctx")["batch"]["total"],
        0
    );
    let open = new_batch(true, None);
    create_batch(&store, &open, vec![]).await;
    assert_eq!(
        store.batch_close(open.id).await.expect("close").state,
        BatchState::Completed
    );
    let listed = store
        .batch_list(BatchListParams {
            state: Some(BatchState::Completed),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, open.id, "newest first");
}

/// Many tasks settling the last jobs of a batch at once: exactly one `on_complete`.
pub(crate) async fn racing_ends_complete_a_batch_once(Ctx { store, .. }: Ctx) {
    let b = new_batch(false, Some("done"));
    create_batch(&store, &b, jobs("q", 40)).await;
    let claimed = claim(&store, "q", 40).await;
    assert_eq!(claimed.len(), 40);
    let mut tasks = Vec::new();
    for c in claimed {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            settled(&s, complete(&c)).await;
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    assert_eq!(claim(&store, "done", 10).await.len(), 1, "one on_complete");
    let got = store.batch_get(b.id).await.expect("get");
    assert_eq!(got.state, BatchState::Completed);
    assert_eq!((got.counts.succeeded, got.counts.pending), (40, 0));
}

/// Many tasks settling the parents of a join at once: the join is released once.
pub(crate) async fn racing_parents_release_a_join_once(Ctx { store, .. }: Ctx) {
    let parents = jobs("q", 40);
    let ids: Vec<_> = parents.iter().map(|j| j.id).collect();
    let mut all = parents;
    all.push(after("join", &ids, false));
    insert(&store, all).await;
    let claimed = claim(&store, "q", 40).await;
    let mut tasks = Vec::new();
    for c in claimed {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            settled(&s, complete(&c)).await;
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let j = claim_only(&store, "join").await;
    assert_eq!(j.job.flow.waiting_for, 0);
    assert_eq!(j.job.state, JobState::Running);
    assert!(claim(&store, "join", 10).await.is_empty());
}

/// A completed batch with a `callback_url` owes one delivery of itself under
/// `batch.completed`, and the event log gets a `batch.completed` event.
pub(crate) async fn a_completed_batch_calls_back_and_logs_its_event(Ctx { store, .. }: Ctx) {
    let mut b = new_batch(false, None);
    b.callback_url = Some("https://hooks.example/batch".into());
    create_batch(&store, &b, jobs("q", 1)).await;
    let one = claim_only(&store, "q").await;
    complete_with(&store, &one, json!(1)).await;
    let claimed = store
        .delivery_claim(crate::DeliveryClaimParams {
            max: 10,
            lease: LEASE,
        })
        .await
        .expect("delivery claim");
    let ours: Vec<_> = claimed
        .iter()
        .filter(|d| d.delivery.event_type == errand_core::EventType::BatchCompleted)
        .collect();
    assert_eq!(ours.len(), 1, "one batch callback");
    assert_eq!(ours[0].delivery.url, "https://hooks.example/batch");
    let body: serde_json::Value = serde_json::from_str(&ours[0].body).expect("json body");
    assert_eq!(body["type"], "batch.completed");
    assert_eq!(body["data"]["batch"]["id"], json!(b.id));
    assert_eq!(body["data"]["batch"]["state"], "completed");
    assert_eq!(body["data"]["batch"]["counts"]["succeeded"], 1);
    // An event is readable once every older transaction has ended (PostgreSQL: on the
    // whole server): write a marker job and read until its event shows.
    let marker = insert(&store, vec![new_job("events-marker", "marker")])
        .await
        .remove(0)
        .job
        .id;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let all = loop {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = store.event_read(after, 1000).await.expect("events");
            let Some(last) = page.events.last() else {
                break;
            };
            after = Some(last.id);
            all.extend(page.events);
        }
        if all.iter().any(|e| e.body.job_id() == Some(marker)) {
            break all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the marker's event never became readable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let events: Vec<_> = all
        .iter()
        .filter(|e| e.body.event_type == errand_core::EventType::BatchCompleted)
        .collect();
    assert_eq!(events.len(), 1, "one batch.completed event");
    assert_eq!(
        events[0].body.batch.as_ref().expect("batch")["id"],
        json!(b.id)
    );
}
