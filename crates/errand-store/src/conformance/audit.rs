//! The audit trail: appended with the store's id and time, read newest first in pages,
//! filtered by actor and action.

use errand_core::time::to_millis;
use errand_core::{AuditEntry, NewAuditEntry};
use serde_json::json;

use super::Ctx;
use crate::{AuditListParams, SharedStore};

fn entry(actor: &str, action: &str, target: &str) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        detail: json!({"n": 1}),
        origin: "127.0.0.1:50000".into(),
    }
}

async fn append(store: &SharedStore, new: NewAuditEntry) -> AuditEntry {
    store.audit_append(new).await.expect("append")
}

async fn list(store: &SharedStore, params: AuditListParams) -> Vec<AuditEntry> {
    store.audit_list(params).await.expect("list")
}

fn ids(entries: &[AuditEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.id).collect()
}

/// Appends a trail of five: two actors, three actions. Returns them oldest first.
async fn trail(store: &SharedStore) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    for (actor, action, target) in [
        ("ops", "queue.pause", "billing"),
        ("ci", "token.create", "deploy"),
        ("ops", "dead.purge", "billing"),
        ("ops", "queue.pause", "email"),
        ("ci", "queue.pause", "billing"),
    ] {
        out.push(append(store, entry(actor, action, target)).await);
    }
    out
}

/// Each entry gets an id greater than every one before it and the store's time, and
/// answers what it stored.
pub(crate) async fn audit_entries_get_growing_ids_and_the_store_time(Ctx { store, .. }: Ctx) {
    let mut last = None;
    for n in 0..3 {
        let before = store.clock_now().await.expect("now");
        let new = entry("ops", "queue.pause", &format!("q{n}"));
        let got = append(&store, new.clone()).await;
        let after = store.clock_now().await.expect("now");
        let at = to_millis(got.at);
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
        assert!(last.is_none_or(|l| got.id > l), "{last:?} then {}", got.id);
        last = Some(got.id);
        assert_eq!(
            (got.actor, got.action, got.target, got.detail, got.origin),
            (new.actor, new.action, new.target, new.detail, new.origin)
        );
    }
}

/// The trail lists newest first; `before` pages back through it by id and `limit` bounds
/// each page, so the pages join to the whole trail with nothing repeated.
pub(crate) async fn audit_list_pages_newest_first(Ctx { store, .. }: Ctx) {
    assert!(list(
        &store,
        AuditListParams {
            limit: 10,
            ..Default::default()
        }
    )
    .await
    .is_empty());
    let written = trail(&store).await;
    let newest_first: Vec<AuditEntry> = written.iter().rev().cloned().collect();
    assert_eq!(
        list(
            &store,
            AuditListParams {
                limit: 10,
                ..Default::default()
            }
        )
        .await,
        newest_first,
        "listed as appended, newest first"
    );
    let mut paged = Vec::new();
    let mut before = None;
    // Bounded: a cursor that failed to move on would otherwise page forever.
    for _ in 0..=written.len() {
        let page = list(
            &store,
            AuditListParams {
                before,
                limit: 2,
                ..Default::default()
            },
        )
        .await;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(ids(&paged), ids(&newest_first));
    let older = list(
        &store,
        AuditListParams {
            before: Some(written[2].id),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&older), vec![written[1].id, written[0].id]);
}

/// `actor` and `action` each narrow the trail, together they must both match, and they
/// page with `before` and `limit` as the whole trail does.
pub(crate) async fn audit_list_filters_by_actor_and_action(Ctx { store, .. }: Ctx) {
    let w = ids(&trail(&store).await);
    let by = |actor: Option<&str>, action: Option<&str>, before: Option<i64>, limit: u32| {
        let store = store.clone();
        let params = AuditListParams {
            actor: actor.map(Into::into),
            action: action.map(Into::into),
            before,
            limit,
        };
        async move { ids(&list(&store, params).await) }
    };
    assert_eq!(
        by(Some("ops"), None, None, 10).await,
        vec![w[3], w[2], w[0]]
    );
    assert_eq!(by(Some("ci"), None, None, 10).await, vec![w[4], w[1]]);
    assert_eq!(
        by(None, Some("queue.pause"), None, 10).await,
        vec![w[4], w[3], w[0]]
    );
    assert_eq!(
        by(Some("ops"), Some("queue.pause"), None, 10).await,
        vec![w[3], w[0]]
    );
    assert_eq!(
        by(Some("ci"), Some("dead.purge"), None, 10).await,
        Vec::<i64>::new()
    );
    assert_eq!(by(Some("nobody"), None, None, 10).await, Vec::<i64>::new());
    assert_eq!(by(Some("ops"), None, None, 2).await, vec![w[3], w[2]]);
    assert_eq!(by(Some("ops"), None, Some(w[2]), 2).await, vec![w[0]]);
    assert_eq!(
        by(None, Some("queue.pause"), Some(w[4]), 1).await,
        vec![w[3]]
    );
    assert_eq!(
        by(Some("ops"), Some("queue.pause"), Some(w[3]), 10).await,
        vec![w[0]]
    );
}

/// An entry's detail reads back as the JSON it was given: nesting, arrays, null, numbers
/// of every kind and text beyond ASCII.
pub(crate) async fn audit_detail_round_trips(Ctx { store, .. }: Ctx) {
    let detail = json!({
        "selection": {"queue": "billing", "kinds": ["a", "b"], "older_than": null},
        "purged": 1_000_000_007_u64,
        "ratio": 0.25,
        "negative": -42,
        "dry_run": false,
        "note": "naïve ✓ \"quoted\" \\ back",
        "empty": {},
        "list": [1, [2, [3]], {"x": []}],
    });
    let new = NewAuditEntry {
        detail: detail.clone(),
        ..entry("ops", "dead.purge", "billing")
    };
    let got = append(&store, new).await;
    assert_eq!(got.detail, detail);
    let listed = list(
        &store,
        AuditListParams {
            limit: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed, vec![got]);
    assert_eq!(listed[0].detail, detail);
}
