//! PostgreSQL for tests: the machine's server, a fresh schema per test, dropped afterwards.
//!
//! `ERRAND_TEST_POSTGRES_URL` names the server (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached, tests are skipped
//! with a loud message, unless `ERRAND_REQUIRE_POSTGRES=1`, when they fail.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::NoTls;

/// The default test database.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test database URL.
pub fn postgres_url() -> String {
    std::env::var("ERRAND_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

fn required() -> bool {
    std::env::var("ERRAND_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A schema that exists for one test and is dropped (with everything in it) afterwards.
pub struct PgSchema {
    /// The database URL.
    pub url: String,
    /// The schema's name.
    pub name: String,
}

impl PgSchema {
    /// A fresh schema name on a reachable server, or `None` (after saying so loudly) when
    /// no server is reachable and none is required.
    ///
    /// # Panics
    /// When `ERRAND_REQUIRE_POSTGRES=1` and the server cannot be reached.
    pub async fn create(test: &str) -> Option<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let url = postgres_url();
        match tokio_postgres::connect(&url, NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                drop(client);
            }
            Err(e) if required() => panic!("PostgreSQL at {url} is required but unreachable: {e}"),
            Err(e) => {
                eprintln!("\n*** SKIPPED {test}: PostgreSQL at {url} is unreachable ({e}); set ERRAND_REQUIRE_POSTGRES=1 to fail instead ***\n");
                return None;
            }
        }
        let name = format!(
            "errand_t{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        Some(Self { url, name })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        // Drop may run inside or outside a runtime: do the cleanup on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
