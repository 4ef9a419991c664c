//! What several PostgreSQL store tests share.

use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;

/// A store on a fresh schema and a raw connection whose search path is that schema;
/// `None` when no PostgreSQL is reachable (the skip is reported).
pub async fn open(test: &str) -> Option<(PgSchema, PgStore, tokio_postgres::Client)> {
    open_with_pool(test, 4).await
}

/// [`open`] with `pool_size` pooled connections.
pub async fn open_with_pool(
    test: &str,
    pool_size: usize,
) -> Option<(PgSchema, PgStore, tokio_postgres::Client)> {
    let schema = PgSchema::create(test).await?;
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size,
        ..PgOptions::new(&schema.url)
    })
    .await
    .expect("connect");
    let raw = errand_testkit::pg_connect(&schema.url)
        .await
        .expect("raw connection");
    raw.batch_execute(&format!("SET search_path TO \"{}\"", schema.name))
        .await
        .expect("search path");
    Some((schema, store, raw))
}
