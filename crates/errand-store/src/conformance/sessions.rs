//! Ordered sessions: one job at a time in enqueue order, a dead head blocking (or not),
//! and durable state handed from job to job under compare-and-set.

use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::ordering::SessionOnDead;
use errand_core::session::MAX_SESSION_STATE_BYTES;
use errand_core::JobState;
use serde_json::{json, Value};

use super::support::*;
use super::Ctx;
use crate::{SessionListParams, SessionStatePutParams, SharedStore, StoreError};

async fn put_state(
    store: &SharedStore,
    key: &str,
    state: Value,
    expected_version: u64,
) -> Result<errand_core::session::Session, StoreError> {
    store
        .session_state_put(SessionStatePutParams {
            key: key.into(),
            state,
            expected_version,
        })
        .await
}

/// A session's jobs run one at a time in enqueue order, a delayed one included: the job
/// after it waits for it, due or not; another session runs alongside.
pub(crate) async fn session_runs_jobs_one_at_a_time_in_order(Ctx { store, clock }: Ctx) {
    let delay = Duration::from_secs(3600);
    let s1 = in_session("q", "s");
    let mut s2 = in_session("q", "s");
    s2.run_at = RunAt::After(delay);
    let s3 = in_session("q", "s");
    let t1 = in_session("q", "t");
    insert(&store, vec![s1.clone(), s2.clone(), s3.clone(), t1.clone()]).await;
    let first = claim(&store, "q", 10).await;
    assert_eq!(ids(&first), vec![s1.id, t1.id], "one job per session");
    assert!(store.job_get(s3.id).await.expect("get").parked);
    settled(&store, complete(&first[0])).await;
    assert!(
        claim(&store, "q", 10).await.is_empty(),
        "s2 is next, and not due: s3 waits for it"
    );
    let session = store.session_get("s").await.expect("session");
    assert_eq!(session.head, Some(s2.id));
    assert_eq!(session.length, 2);
    clock.advance(delay + Duration::from_secs(1)).await;
    promote(&store).await;
    let second = claim(&store, "q", 10).await;
    assert_eq!(ids(&second), vec![s2.id]);
    settled(&store, complete(&second[0])).await;
    let third = claim(&store, "q", 10).await;
    assert_eq!(ids(&third), vec![s3.id]);
    settled(&store, complete(&third[0])).await;
    let done = store.session_get("s").await.expect("session");
    assert_eq!(done.head, None);
    assert_eq!(done.length, 0);
}

/// A failing head keeps its turn: the session waits for its retry.
pub(crate) async fn a_failing_session_head_holds_the_session(Ctx { store, clock }: Ctx) {
    let s1 = in_session("q", "s");
    let s2 = in_session("q", "s");
    insert(&store, vec![s1.clone(), s2.clone()]).await;
    let c1 = claim(&store, "q", 10).await.remove(0);
    let retry = Duration::from_secs(60);
    settled(&store, fail(&c1, Some(retry), false)).await;
    assert!(claim(&store, "q", 10).await.is_empty(), "s2 waits for s1");
    assert_eq!(
        store.session_get("s").await.expect("session").head,
        Some(s1.id)
    );
    clock.advance(retry + Duration::from_secs(1)).await;
    promote(&store).await;
    let again = claim(&store, "q", 10).await;
    assert_eq!(ids(&again), vec![s1.id], "the retry comes first");
    settled(&store, complete(&again[0])).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![s2.id]);
}

/// A dead head blocks its session by default until it is retried; the retried job runs
/// before the rest.
pub(crate) async fn a_dead_session_head_blocks_until_retried(Ctx { store, .. }: Ctx) {
    let s1 = in_session("q", "s");
    let s2 = in_session("q", "s");
    insert(&store, vec![s1.clone(), s2.clone()]).await;
    let c1 = claim(&store, "q", 10).await.remove(0);
    let dead = settled(&store, fail(&c1, None, true)).await;
    assert_eq!(dead.state, JobState::Dead);
    assert!(claim(&store, "q", 10).await.is_empty(), "blocked");
    let session = store.session_get("s").await.expect("session");
    assert_eq!(session.blocked_by, Some(s1.id));
    assert_eq!(session.head, Some(s1.id));
    assert_eq!(session.length, 1, "s2 is the only unfinished job");
    store.job_retry(s1.id).await.expect("retry");
    let again = claim(&store, "q", 10).await;
    assert_eq!(ids(&again), vec![s1.id], "the retried head runs first");
    assert_eq!(
        store.session_get("s").await.expect("session").blocked_by,
        None
    );
    settled(&store, complete(&again[0])).await;
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![s2.id]);
}

/// Unblocking moves a session past its dead head, which stays dead; a session that is not
/// blocked, or does not exist, cannot be unblocked.
pub(crate) async fn session_unblock_moves_past_the_dead_head(Ctx { store, .. }: Ctx) {
    let s1 = in_session("q", "s");
    let s2 = in_session("q", "s");
    insert(&store, vec![s1.clone(), s2.clone()]).await;
    let c1 = claim(&store, "q", 10).await.remove(0);
    settled(&store, fail(&c1, None, true)).await;
    let session = store.session_unblock("s").await.expect("unblock");
    assert_eq!(session.blocked_by, None);
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![s2.id]);
    assert_eq!(
        store.job_get(s1.id).await.expect("get").state,
        JobState::Dead
    );
    assert!(matches!(
        store.session_unblock("s").await,
        Err(StoreError::WrongState(_))
    ));
    assert!(matches!(
        store.session_unblock("nobody").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A head marked `continue` that dies lets the session move on.
pub(crate) async fn a_session_set_to_continue_moves_past_a_dead_head(Ctx { store, .. }: Ctx) {
    let mut s1 = in_session("q", "s");
    s1.ordering.session_on_dead = Some(SessionOnDead::Continue);
    let s2 = in_session("q", "s");
    insert(&store, vec![s1.clone(), s2.clone()]).await;
    let c1 = claim(&store, "q", 10).await.remove(0);
    settled(&store, fail(&c1, None, true)).await;
    assert_eq!(store.session_get("s").await.expect("s").blocked_by, None);
    assert_eq!(ids(&claim(&store, "q", 10).await), vec![s2.id]);
}

/// A claim hands the head its session's state; completing with a new state stores it
/// with the next version, for the next job.
pub(crate) async fn session_state_is_handed_on_from_job_to_job(Ctx { store, .. }: Ctx) {
    let s1 = in_session("q", "s");
    let s2 = in_session("q", "s");
    let plain = new_job("q", "k");
    insert(&store, vec![s1.clone(), s2.clone(), plain.clone()]).await;
    let first = claim(&store, "q", 10).await;
    assert_eq!(ids(&first), vec![s1.id, plain.id]);
    let handed = first[0]
        .session
        .clone()
        .expect("a session job gets its state");
    assert_eq!(handed.key, "s");
    assert_eq!(handed.state, Value::Null);
    assert_eq!(handed.version, 0);
    assert!(first[1].session.is_none(), "a plain job has no session");
    let refused = settle(&store, complete_with_state(&first[1], json!({"x": 1}))).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "a job without a session has no state to set: {refused:?}"
    );
    settled(&store, complete_with_state(&first[0], json!({"cursor": 7}))).await;
    let second = claim(&store, "q", 10).await;
    assert_eq!(ids(&second), vec![s2.id]);
    let handed = second[0].session.clone().expect("state");
    assert_eq!(handed.state, json!({"cursor": 7}));
    assert_eq!(handed.version, 1);
    // Completing without a state leaves it as it is.
    settled(&store, complete(&second[0])).await;
    let session = store.session_get("s").await.expect("session");
    assert_eq!(session.state, json!({"cursor": 7}));
    assert_eq!(session.version, 1);
}

/// Session state is written by compare-and-set on its version; any JSON will do, but not
/// more than the bound; a refused write changes nothing.
pub(crate) async fn session_state_put_is_compare_and_set(Ctx { store, .. }: Ctx) {
    assert!(matches!(
        store.session_get("s").await,
        Err(StoreError::NotFound { .. })
    ));
    let conflict = put_state(&store, "s", json!(1), 5).await;
    assert!(
        matches!(
            conflict,
            Err(StoreError::VersionConflict {
                expected: 5,
                current: 0,
                ..
            })
        ),
        "{conflict:?}"
    );
    let created = put_state(&store, "s", json!("a string is state too"), 0)
        .await
        .expect("create");
    assert_eq!(created.version, 1);
    assert_eq!(created.state, json!("a string is state too"));
    let stale = put_state(&store, "s", json!([1]), 0).await;
    assert!(
        matches!(
            stale,
            Err(StoreError::VersionConflict {
                expected: 0,
                current: 1,
                ..
            })
        ),
        "{stale:?}"
    );
    let next = put_state(&store, "s", json!([1, 2]), 1).await.expect("put");
    assert_eq!(next.version, 2);
    let huge = json!("x".repeat(MAX_SESSION_STATE_BYTES + 1));
    assert!(matches!(
        put_state(&store, "s", huge, 2).await,
        Err(StoreError::Invalid(_))
    ));
    let kept = store.session_get("s").await.expect("get");
    assert_eq!(kept.version, 2);
    assert_eq!(kept.state, json!([1, 2]));
    // A session whose state was set before any job runs hands it to its first job.
    insert(&store, vec![in_session("q", "s")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let handed = c.session.expect("state");
    assert_eq!((handed.state, handed.version), (json!([1, 2]), 2));
}

/// Completing with an oversized state is refused and the job keeps running.
pub(crate) async fn an_oversized_session_state_is_refused_on_complete(Ctx { store, .. }: Ctx) {
    insert(&store, vec![in_session("q", "s")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let huge = json!("x".repeat(MAX_SESSION_STATE_BYTES + 1));
    let r = settle(&store, complete_with_state(&c, huge)).await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    assert_eq!(
        store.job_get(c.job.id).await.expect("get").state,
        JobState::Running
    );
    assert_eq!(store.session_get("s").await.expect("s").version, 0);
}

/// Sessions are listed by key, paged by cursor, and filtered by whether they are blocked.
pub(crate) async fn session_list_filters_and_pages(Ctx { store, .. }: Ctx) {
    for key in ["c", "a", "b"] {
        insert(&store, vec![in_session("q", key)]).await;
    }
    let claimed = claim(&store, "q", 10).await;
    let b = claimed
        .iter()
        .find(|c| c.job.ordering.session_key.as_deref() == Some("b"))
        .expect("b claimed");
    settled(&store, fail(b, None, true)).await;
    let list = |after: Option<&str>, blocked: Option<bool>, limit: u32| {
        let store = store.clone();
        let after = after.map(str::to_string);
        async move {
            store
                .session_list(SessionListParams {
                    after,
                    blocked,
                    limit,
                })
                .await
                .expect("list")
                .into_iter()
                .map(|s| s.key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, None, 2).await, vec!["a", "b"]);
    assert_eq!(list(Some("b"), None, 2).await, vec!["c"]);
    assert_eq!(list(None, Some(true), 10).await, vec!["b"]);
    assert_eq!(list(None, Some(false), 10).await, vec!["a", "c"]);
}
