//! Readiness: `ping` is what `/readyz` asks, and it must mean "can accept a job".

use super::support::{insert, new_job};
use super::Ctx;

/// A writable store answers `ping`, and a job inserted right after it is kept: `ping` asks
/// the question that matters for taking jobs (on PostgreSQL whether the database takes
/// writes, on SQLite whether the file opened is still there and writable), and a store
/// fit for work answers it yes. The refusals (a read-only database, a vanished file) need
/// what only a real deployment has: `crates/errand/tests/store_vanish.rs` shows them.
/// A store its own build opened (and migrated) is at the version this build expects, so
/// `/readyz` says `migrations: ok`; the mismatches need a database another build touched
/// (each store's `schema_version` test).
pub(crate) async fn a_migrated_store_is_at_its_build_version(Ctx { store, .. }: Ctx) {
    let v = store.schema_version().await.expect("schema version");
    assert!(v.expected > 0, "{v:?}");
    assert_eq!(v.applied, v.expected);
}

pub(crate) async fn a_writable_store_is_ready(Ctx { store, .. }: Ctx) {
    store.ping().await.expect("a writable store is ready");
    let inserted = insert(&store, vec![new_job("ready", "k")]).await;
    assert_eq!(inserted.len(), 1);
    store.ping().await.expect("still ready after a write");
}
