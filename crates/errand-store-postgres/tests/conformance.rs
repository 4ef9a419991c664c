//! The shared store conformance suite, run against PostgreSQL, each case in its own schema.

use std::sync::Arc;

use errand_store::conformance::Fixture;
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;

async fn fresh_store() -> Option<Fixture> {
    let schema = PgSchema::create("postgres conformance").await?;
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size: 4,
        ..PgOptions::new(&schema.url)
    })
    .await
    .expect("connect to PostgreSQL");
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(schema),
    })
}

errand_store::conformance_suite!(fresh_store);
