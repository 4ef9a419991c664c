//! A queue's settings: defaults for the fields a new job leaves unset, a retry backoff,
//! and updates that are checked whole before anything changes.

use std::time::Duration;

use errand_core::job::Inherit;
use errand_core::queue::{Backoff, QueueSettingsPatch};
use errand_core::throttle::RateLimit;
use errand_core::JobState;

use super::support::*;
use super::Ctx;
use crate::StoreError;

/// A queue's defaults fill the fields a job left unset, and only those.
pub(crate) async fn queue_defaults_fill_unset_fields_only(Ctx { store, .. }: Ctx) {
    let info = store
        .queue_update(
            &queue("q"),
            QueueSettingsPatch {
                priority: Some(Some(5)),
                max_attempts: Some(Some(7)),
                timeout_ms: Some(Some(60_000)),
                ..Default::default()
            },
        )
        .await
        .expect("update creates the queue");
    assert_eq!(info.settings.defaults.priority, Some(5));
    let mut unset = new_job("q", "k");
    unset.inherit = Inherit {
        priority: true,
        max_attempts: true,
        timeout: true,
    };
    let mut some = new_job("q", "k");
    some.priority = 1;
    some.inherit = Inherit {
        priority: false,
        max_attempts: true,
        timeout: false,
    };
    let given = new_job("q", "k");
    let out = insert(&store, vec![unset, some, given]).await;
    let got: Vec<_> = out
        .iter()
        .map(|i| (i.job.priority, i.job.max_attempts, i.job.timeout_ms))
        .collect();
    let minute = Some(60_000);
    assert_eq!(
        got,
        vec![(5, 7, minute), (1, 7, None), (0, 3, None)],
        "defaults only where the caller left a field unset"
    );
    let stored = store.job_get(out[0].job.id).await.expect("get");
    assert_eq!((stored.priority, stored.max_attempts), (5, 7));
}

/// A failure without its own retry delay waits the queue's backoff.
pub(crate) async fn queue_backoff_spaces_retries(Ctx { store, clock }: Ctx) {
    let base = Duration::from_secs(600);
    store
        .queue_update(
            &queue("q"),
            QueueSettingsPatch {
                backoff: Some(Some(Backoff {
                    base_ms: 600_000,
                    max_ms: 3_600_000,
                })),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    insert(&store, vec![new_job("q", "k")]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    let failed = settled(&store, fail(&c, None, false)).await;
    assert_eq!(failed.state, JobState::Scheduled);
    clock.advance(base - EARLY).await;
    promote(&store).await;
    assert!(
        claim(&store, "q", 1).await.is_empty(),
        "the queue's ten minutes, not the default second"
    );
    clock.advance(PAST).await;
    promote(&store).await;
    assert_eq!(claim(&store, "q", 1).await.len(), 1);
}

/// A bad value is refused and nothing of the update is kept, not even its good fields;
/// an update of an unknown queue creates it.
pub(crate) async fn queue_update_refuses_bad_values_whole(Ctx { store, .. }: Ctx) {
    let before = store
        .queue_update(
            &queue("q"),
            QueueSettingsPatch {
                concurrency: Some(Some(3)),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(before.settings.concurrency, Some(3));
    let bad = [
        QueueSettingsPatch {
            concurrency: Some(Some(0)),
            priority: Some(Some(9)),
            ..Default::default()
        },
        QueueSettingsPatch {
            rate: Some(Some(RateLimit {
                limit: 0,
                period_ms: 1000,
                burst: None,
            })),
            paused: Some(true),
            ..Default::default()
        },
        QueueSettingsPatch {
            max_attempts: Some(Some(0)),
            ..Default::default()
        },
        QueueSettingsPatch {
            priority: Some(Some(100_000)),
            ..Default::default()
        },
        QueueSettingsPatch {
            backoff: Some(Some(Backoff {
                base_ms: 10,
                max_ms: 1,
            })),
            ..Default::default()
        },
        QueueSettingsPatch {
            timeout_ms: Some(Some(0)),
            ..Default::default()
        },
    ];
    for patch in bad {
        let r = store.queue_update(&queue("q"), patch.clone()).await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{patch:?}: {r:?}");
    }
    let after = store.queue_get(&queue("q")).await.expect("get");
    assert_eq!(after.settings, before.settings, "nothing changed");
    assert!(!after.paused);
    let r = store
        .queue_update(
            &queue("fresh"),
            QueueSettingsPatch {
                concurrency: Some(Some(0)),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))));
    assert!(
        matches!(
            store.queue_get(&queue("fresh")).await,
            Err(StoreError::NotFound { .. })
        ),
        "a refused update creates no queue"
    );
    let paused = store
        .queue_update(
            &queue("fresh"),
            QueueSettingsPatch {
                paused: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert!(paused.paused);
    let listed = store.queue_list().await.expect("list");
    let q = listed
        .iter()
        .find(|i| i.name == queue("q"))
        .expect("q listed");
    assert_eq!(q.settings.concurrency, Some(3), "list shows settings");
}
