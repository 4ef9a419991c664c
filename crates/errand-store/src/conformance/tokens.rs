//! API tokens: stored with the hash of their secret, unique by name while not revoked,
//! revoked for good, and stamped when used.

use std::time::Duration;

use errand_core::time::{to_millis, to_timestamp};
use errand_core::{ApiToken, Millis, NewToken, Scope, TokenId};

use super::support::queue;
use super::Ctx;
use crate::{SharedStore, StoreError};

/// A 32-byte hash whose bytes all differ; a seed above 224 wraps through a zero byte.
fn hash(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| seed.wrapping_add(i as u8))
}

fn new_token(name: &str) -> NewToken {
    NewToken {
        id: TokenId::new(),
        name: name.into(),
        secret_hash: hash(7),
        scopes: vec![Scope::Read],
        queues: vec![],
        expires_at: None,
    }
}

async fn create(store: &SharedStore, new: NewToken) -> ApiToken {
    store.token_create(new).await.expect("create token")
}

async fn now(store: &SharedStore) -> Millis {
    store.clock_now().await.expect("now")
}

fn assert_already_exists(got: Result<ApiToken, StoreError>, what: &str) {
    match got {
        Err(StoreError::AlreadyExists { what: said }) => assert_eq!(said, what),
        other => panic!("expected AlreadyExists for {what}, got {other:?}"),
    }
}

/// A token reads back as it was created, every field and the hash of its secret, stamped
/// with the store's time and neither used nor revoked.
pub(crate) async fn a_token_round_trips_with_its_hash(Ctx { store, .. }: Ctx) {
    let before = now(&store).await;
    let expires = to_timestamp(before + 86_400_000);
    let new = NewToken {
        id: TokenId::new(),
        name: "deploy bot".into(),
        secret_hash: hash(250),
        scopes: vec![Scope::Enqueue, Scope::Work, Scope::Admin],
        queues: vec![queue("billing"), queue("email")],
        expires_at: Some(expires),
    };
    let created = create(&store, new.clone()).await;
    let after = now(&store).await;
    assert_eq!(created.id, new.id);
    assert_eq!(created.name, "deploy bot");
    assert_eq!(created.scopes, new.scopes);
    assert_eq!(created.queues, new.queues);
    assert_eq!(created.expires_at, Some(expires));
    let at = to_millis(created.created_at);
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    assert_eq!((created.last_used_at, created.revoked_at), (None, None));

    let stored = store.token_get(new.id).await.expect("get");
    assert_eq!(stored.token, created);
    assert_eq!(stored.secret_hash, new.secret_hash);

    // Neither limits nor an expiry: empty and none read back so.
    let plain = create(&store, new_token("reader")).await;
    let stored = store.token_get(plain.id).await.expect("get");
    assert_eq!(stored.token.queues, vec![]);
    assert_eq!(stored.token.expires_at, None);
    assert_eq!(stored.secret_hash, hash(7));
}

/// While a token is not revoked no other may take its name, and an id is never taken
/// twice; a refused create stores nothing.
pub(crate) async fn a_token_name_is_taken_while_the_token_is_active(Ctx { store, .. }: Ctx) {
    let first = create(&store, new_token("ci")).await;
    let same_name = new_token("ci");
    assert_already_exists(store.token_create(same_name.clone()).await, "token ci");
    assert!(matches!(
        store.token_get(same_name.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let same_id = NewToken {
        id: first.id,
        ..new_token("other")
    };
    assert_already_exists(
        store.token_create(same_id).await,
        &format!("token {}", first.id),
    );
    let listed = store.token_list().await.expect("list");
    assert_eq!(listed, vec![first]);
}

/// A revoked token's name is free again; the new token holds it until it is revoked too.
pub(crate) async fn a_revoked_tokens_name_may_be_reused(Ctx { store, .. }: Ctx) {
    let old = create(&store, new_token("ci")).await;
    store.token_revoke(old.id).await.expect("revoke");
    let new = create(&store, new_token("ci")).await;
    assert_ne!(new.id, old.id);
    assert_eq!(new.revoked_at, None);
    assert_already_exists(store.token_create(new_token("ci")).await, "token ci");
    let ids: Vec<TokenId> = store
        .token_list()
        .await
        .expect("list")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, vec![old.id, new.id]);
}

/// Revoking stamps the store's time once: revoking again later keeps the first time.
pub(crate) async fn revoking_a_token_twice_keeps_the_first_time(Ctx { store, clock }: Ctx) {
    let token = create(&store, new_token("ci")).await;
    let before = now(&store).await;
    let revoked = store.token_revoke(token.id).await.expect("revoke");
    let after = now(&store).await;
    let at = revoked.revoked_at.map(to_millis).expect("revoked");
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    assert_eq!(
        ApiToken {
            revoked_at: None,
            ..revoked.clone()
        },
        token,
        "revoking changes nothing else"
    );
    clock.advance(Duration::from_secs(60)).await;
    let again = store.token_revoke(token.id).await.expect("revoke again");
    assert_eq!(again.revoked_at, revoked.revoked_at);
    let stored = store.token_get(token.id).await.expect("get");
    assert_eq!(stored.token.revoked_at, revoked.revoked_at);
}

/// A token that does not exist is `NotFound` to read and to revoke.
pub(crate) async fn an_unknown_token_is_not_found(Ctx { store, .. }: Ctx) {
    create(&store, new_token("ci")).await;
    let unknown = TokenId::new();
    assert!(matches!(
        store.token_get(unknown).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.token_revoke(unknown).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A use is kept only when later than the one stored, so nodes reporting out of order
/// never move it back; a use of a token that does not exist is ignored.
pub(crate) async fn token_use_keeps_the_latest_time(Ctx { store, .. }: Ctx) {
    let token = create(&store, new_token("ci")).await;
    let other = create(&store, new_token("other")).await;
    let base = now(&store).await;
    let last_used = |store: SharedStore, id| async move {
        store.token_get(id).await.expect("get").token.last_used_at
    };
    let t = |offset: Millis| to_timestamp(base + offset);

    store.token_used(token.id, t(2_000)).await.expect("used");
    assert_eq!(last_used(store.clone(), token.id).await, Some(t(2_000)));
    store.token_used(token.id, t(1_000)).await.expect("used");
    assert_eq!(
        last_used(store.clone(), token.id).await,
        Some(t(2_000)),
        "an earlier use does not move it back"
    );
    store.token_used(token.id, t(3_000)).await.expect("used");
    assert_eq!(last_used(store.clone(), token.id).await, Some(t(3_000)));
    assert_eq!(
        last_used(store.clone(), other.id).await,
        None,
        "only the token used"
    );

    store
        .token_used(TokenId::new(), t(4_000))
        .await
        .expect("an unknown token is ignored");
    assert_eq!(store.token_list().await.expect("list").len(), 2);
}

/// Ending a token's sessions keeps the latest time, as a use does; nothing else changes,
/// and a token that does not exist is ignored.
pub(crate) async fn ending_sessions_keeps_the_latest_time(Ctx { store, .. }: Ctx) {
    let token = create(&store, new_token("ci")).await;
    let other = create(&store, new_token("other")).await;
    let base = now(&store).await;
    let t = |offset: Millis| to_timestamp(base + offset);
    let ended = |store: SharedStore, id| async move {
        store.token_get(id).await.expect("get").sessions_ended_at
    };
    assert_eq!(ended(store.clone(), token.id).await, None);
    store
        .token_end_sessions(token.id, t(2_000))
        .await
        .expect("end");
    assert_eq!(ended(store.clone(), token.id).await, Some(t(2_000)));
    store
        .token_end_sessions(token.id, t(1_000))
        .await
        .expect("end");
    assert_eq!(
        ended(store.clone(), token.id).await,
        Some(t(2_000)),
        "an earlier end does not move it back"
    );
    assert_eq!(
        ended(store.clone(), other.id).await,
        None,
        "only that token"
    );
    assert_eq!(
        store.token_get(token.id).await.expect("get").token,
        token,
        "the token itself is unchanged"
    );
    store
        .token_end_sessions(TokenId::new(), t(3_000))
        .await
        .expect("an unknown token is ignored");
}

/// Every token lists, revoked ones too, oldest first.
pub(crate) async fn tokens_list_oldest_first_with_revoked_ones(Ctx { store, clock }: Ctx) {
    assert!(store.token_list().await.expect("list").is_empty());
    let mut created = Vec::new();
    for name in ["a", "b", "c"] {
        created.push(create(&store, new_token(name)).await);
        clock.advance(Duration::from_secs(1)).await;
    }
    let revoked = store.token_revoke(created[1].id).await.expect("revoke");
    created[1] = revoked;
    let listed = store.token_list().await.expect("list");
    assert_eq!(listed, created);
    assert!(listed[1].revoked_at.is_some());
}

/// Creates racing for one name: exactly one token is stored, and every other caller hears
/// `AlreadyExists` (not a constraint error), on every node of a shared store.
pub(crate) async fn racing_token_creates_of_one_name_keep_one(Ctx { store, .. }: Ctx) {
    const CALLERS: usize = 16;
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let store = store.clone();
        callers.spawn(async move { store.token_create(new_token("ci")).await });
    }
    let mut won = Vec::new();
    while let Some(answer) = callers.join_next().await {
        match answer.expect("caller") {
            Ok(token) => won.push(token),
            Err(StoreError::AlreadyExists { what }) => assert_eq!(what, "token ci"),
            Err(other) => panic!("expected AlreadyExists, got {other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one create stores the token");
    assert_eq!(store.token_list().await.expect("list"), won);
}
