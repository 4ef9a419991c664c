//! For tests that look at what one database backend did (its plan cache, its statistics):
//! a store whose every call runs on one connection, with a second connection held aside.

use deadpool_postgres::Object;
use errand_testkit::PgSchema;

use crate::{PgOptions, PgStore};

/// A store on a fresh schema whose calls all run on one backend: its pool has two
/// connections (the least it opens) and the returned one is held aside, so the store only
/// ever gets the other. `None` when no PostgreSQL is reachable (the skip is reported).
pub(crate) async fn one_backend_store(test: &str) -> Option<(PgSchema, PgStore, Object)> {
    let schema = PgSchema::create(test).await?;
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size: 2,
        ..PgOptions::new(&schema.url)
    })
    .await
    .expect("connect");
    let held = store.client().await.expect("a connection");
    Some((schema, store, held))
}

/// Makes the store's backend report its pending statistics now (PostgreSQL reports them when
/// idle, at most once a second, and may hold them ten seconds), so that a statistics view
/// read next counts everything the store has run. The backend reports before it says it is
/// ready for the next query, which the call waits for. Needs PostgreSQL 15 or later.
pub(crate) async fn report_statistics(store: &PgStore) {
    let backend = store.client().await.expect("the store's connection");
    backend
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .expect("force the report (PostgreSQL 15 or later)");
}
