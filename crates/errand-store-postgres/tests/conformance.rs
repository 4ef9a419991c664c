//! The shared store conformance suite, run against PostgreSQL, each case in its own schema.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use errand_store::conformance::{DriveClock, Fixture};
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;
use tokio_postgres::NoTls;

/// Drives the clock of one test schema. Every query of the store reads its time through
/// `errand_now()`, so the fixture replaces that function, in the test's schema only, with
/// one that adds an offset kept in a one-row table; advancing updates the row. The
/// production function and its migration stay as they are.
struct PgClock {
    client: tokio_postgres::Client,
    table: String,
}

#[async_trait]
impl DriveClock for PgClock {
    async fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).expect("a test advances by less than i64 ms");
        self.client
            .execute(
                &format!("UPDATE {} SET offset_ms = offset_ms + $1", self.table),
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
    let (client, conn) = tokio_postgres::connect(&schema.url, NoTls)
        .await
        .expect("connect the clock");
    tokio::spawn(conn);
    let s = &schema.name;
    let table = format!("\"{s}\".errand_test_clock");
    // STABLE like the original, so a statement sees one "now" however often it asks.
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (offset_ms bigint NOT NULL); \
             INSERT INTO {table} VALUES (0); \
             CREATE OR REPLACE FUNCTION \"{s}\".errand_now() RETURNS bigint LANGUAGE sql STABLE \
                 AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint \
                     + (SELECT offset_ms FROM {table}) $$;"
        ))
        .await
        .expect("install the test clock");
    Some(Fixture {
        store: Arc::new(store),
        clock: Arc::new(PgClock { client, table }),
        guard: Box::new(schema),
    })
}

errand_store::conformance_suite!(fresh_store);
