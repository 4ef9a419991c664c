//! The shared store conformance suite, run against PostgreSQL, each case in its own schema.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use errand_store::conformance::{DriveClock, Fixture};
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;
use tokio::sync::OnceCell;

/// Drives the clock of one test schema. Every query of the store reads its time through
/// `errand_now()`, so on its first advance this replaces that function, in the test's schema
/// only, with one that adds an offset kept in a one-row table; each advance then updates the
/// row. Until a case advances, the store runs the production function unchanged, and the
/// cases that never advance pay for no extra connection. PostgreSQL drops cached plans that
/// inlined the old function when it is replaced, so the pool's prepared statements follow.
struct PgClock {
    url: String,
    schema: String,
    client: OnceCell<tokio_postgres::Client>,
}

impl PgClock {
    async fn install(&self) -> tokio_postgres::Client {
        let client = errand_testkit::pg_connect(&self.url)
            .await
            .expect("connect the clock");
        let s = &self.schema;
        // STABLE like the original, so a statement sees one "now" however often it asks.
        client
            .batch_execute(&format!(
                "CREATE TABLE \"{s}\".errand_test_clock (offset_ms bigint NOT NULL); \
                 INSERT INTO \"{s}\".errand_test_clock VALUES (0); \
                 CREATE OR REPLACE FUNCTION \"{s}\".errand_now() RETURNS bigint LANGUAGE sql STABLE \
                     AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint \
                         + (SELECT offset_ms FROM \"{s}\".errand_test_clock) $$;"
            ))
            .await
            .expect("install the test clock");
        client
    }
}

#[async_trait]
impl DriveClock for PgClock {
    async fn advance(&self, by: Duration) {
        let client = self.client.get_or_init(|| self.install()).await;
        let ms = i64::try_from(by.as_millis()).expect("a test advances by less than i64 ms");
        client
            .execute(
                &format!(
                    "UPDATE \"{}\".errand_test_clock SET offset_ms = offset_ms + $1",
                    self.schema
                ),
                &[&ms],
            )
            .await
            .expect("advance the test clock");
    }
}

async fn fresh_store() -> Option<Fixture> {
    let schema = PgSchema::create("postgres conformance").await?;
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size: 4,
        ..PgOptions::new(&schema.url)
    })
    .await
    .expect("connect to PostgreSQL");
    let clock = PgClock {
        url: schema.url.clone(),
        schema: schema.name.clone(),
        client: OnceCell::new(),
    };
    Some(Fixture {
        store: Arc::new(store),
        clock: Arc::new(clock),
        guard: Box::new(schema),
    })
}

errand_store::conformance_suite!(fresh_store);
