//! Marks: a job enqueued once per mark, ever.

use std::time::Duration;

use errand_core::{JobState, NewJob};

use super::support::*;
use super::Ctx;
use crate::{InsertedJob, JobInsertMarkedParams, JobPruneParams, SharedStore, StoreError};

async fn marked(store: &SharedStore, job: NewJob, scope: &str, key: &str) -> Option<InsertedJob> {
    store
        .job_insert_marked(JobInsertMarkedParams {
            job,
            scope: scope.into(),
            key: key.into(),
            idempotency_window: WINDOW,
        })
        .await
        .expect("insert marked")
}

/// A marked insert stores the job once per `(scope, key)`: a repeat stores nothing, even
/// after the first job was pruned, until the mark is deleted; marks list per scope.
pub(crate) async fn a_mark_enqueues_once_even_after_its_job_is_pruned(Ctx { store, clock }: Ctx) {
    let first = new_job("m1", "watch");
    let got = marked(&store, first.clone(), "watch:in", "a.csv@1")
        .await
        .expect("a new mark inserts");
    assert!(got.inserted);
    assert_eq!(got.job.id, first.id);
    assert_eq!(got.job.state, JobState::Available);
    assert_eq!(store.job_get(first.id).await.expect("stored").id, first.id);

    let again = new_job("m2", "watch");
    assert!(marked(&store, again.clone(), "watch:in", "a.csv@1")
        .await
        .is_none());
    assert!(
        matches!(
            store.job_get(again.id).await,
            Err(StoreError::NotFound { .. })
        ),
        "a repeated mark stores no job"
    );
    assert!(
        marked(&store, new_job("m2", "watch"), "watch:other", "a.csv@1")
            .await
            .is_some(),
        "marks are per scope"
    );
    assert!(
        marked(&store, new_job("m2", "watch"), "watch:in", "b.csv@1")
            .await
            .is_some()
    );
    assert_eq!(
        store.mark_list("watch:in").await.expect("marks"),
        vec!["a.csv@1".to_string(), "b.csv@1".to_string()]
    );

    let c = claim(&store, "m1", 1).await.remove(0);
    settle(&store, complete(&c)).await.expect("complete");
    let retention = Duration::from_secs(60);
    clock.advance(retention + PAST).await;
    let pruned = store
        .job_prune(JobPruneParams {
            states: vec![JobState::Succeeded],
            older_than: retention,
            limit: 100,
        })
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    assert!(
        marked(&store, new_job("m1", "watch"), "watch:in", "a.csv@1")
            .await
            .is_none(),
        "the mark outlives its job"
    );

    let n = store
        .mark_delete("watch:in", vec!["a.csv@1".into(), "gone.csv@9".into()])
        .await
        .expect("delete marks");
    assert_eq!(n, 1);
    assert_eq!(
        store.mark_list("watch:in").await.expect("marks"),
        vec!["b.csv@1".to_string()]
    );
    assert!(
        marked(&store, new_job("m1", "watch"), "watch:in", "a.csv@1")
            .await
            .is_some(),
        "a forgotten mark enqueues again"
    );
}
