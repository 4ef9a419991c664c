//! PostgreSQL for tests: the machine's server, a fresh schema per test, dropped afterwards.
//!
//! `ERRAND_TEST_POSTGRES_URL` names the server (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached, tests are skipped
//! with a loud message, unless `ERRAND_REQUIRE_POSTGRES=1`, when they fail.

use std::sync::atomic::{AtomicU64, Ordering};

/// The default test database.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test database URL.
pub fn postgres_url() -> String {
    std::env::var("ERRAND_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

/// Connects to `url` the way errand does (its `sslmode` and `sslrootcert` honoured by the
/// store's own connector), driving the connection on a task.
///
/// # Errors
/// The URL's TLS settings cannot be honoured, or the server cannot be reached.
pub async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (config, tls) = errand_store_postgres::pg_config(url).map_err(|e| e.to_string())?;
    let (client, conn) = config.connect(tls).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(client)
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
        let (client, url) = connect_or_skip(test).await?;
        drop(client);
        Some(Self {
            url,
            name: unique_name(),
        })
    }
}

/// A connection to the test server and its URL, or `None` (after saying so loudly) when it
/// cannot be reached and is not required.
///
/// # Panics
/// When `ERRAND_REQUIRE_POSTGRES=1` and the server cannot be reached.
async fn connect_or_skip(test: &str) -> Option<(tokio_postgres::Client, String)> {
    let url = postgres_url();
    match pg_connect(&url).await {
        Ok(client) => Some((client, url)),
        Err(e) if required() => panic!("PostgreSQL at {url} is required but unreachable: {e}"),
        Err(e) => {
            eprintln!("\n*** SKIPPED {test}: PostgreSQL at {url} is unreachable ({e}); set ERRAND_REQUIRE_POSTGRES=1 to fail instead ***\n");
            None
        }
    }
}

/// A name no other test of any process uses.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "errand_t{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

/// A database that exists for one test and is dropped afterwards (its sessions ended), for
/// tests that change database-wide settings no schema can hold, such as
/// `default_transaction_read_only`.
pub struct PgDatabase {
    /// A URL naming this database on the test server.
    pub url: String,
    /// The database's name.
    pub name: String,
    /// The test server's URL, where the database is dropped from.
    admin_url: String,
}

impl PgDatabase {
    /// Creates a fresh database on a reachable server, or `None` (after saying so loudly)
    /// when no server is reachable and none is required.
    ///
    /// # Panics
    /// When `ERRAND_REQUIRE_POSTGRES=1` and the server cannot be reached, or the database
    /// cannot be created.
    pub async fn create(test: &str) -> Option<Self> {
        let (client, admin_url) = connect_or_skip(test).await?;
        let name = unique_name();
        if let Err(e) = client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
        {
            panic!("cannot create database {name}: {e}");
        }
        let base = admin_url
            .split_once('?')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = match base.rsplit_once('/') {
            Some((server, _)) if server.contains("//") => format!("{server}/{name}"),
            _ => format!("{base}/{name}"),
        };
        Some(Self {
            url,
            name,
            admin_url,
        })
    }

    /// Runs `sql` on the test server's own database (where `ALTER DATABASE` and
    /// `pg_terminate_backend` for this one are run from).
    ///
    /// # Panics
    /// When the server cannot be reached or refuses the statement.
    pub async fn admin(&self, sql: &str) {
        let client = pg_connect(&self.admin_url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.admin_url));
        if let Err(e) = client.batch_execute(sql).await {
            panic!("{sql}: {e}");
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        run_on_own_thread(url, sql);
    }
}

/// Runs one cleanup statement from `Drop`, which may run inside or outside a runtime: on a
/// thread of its own with a runtime of its own. Failures are ignored (cleanup only).
fn run_on_own_thread(url: String, sql: String) {
    let cleanup = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(client) = pg_connect(&url).await {
                let _ = client.batch_execute(&sql).await;
            }
        });
    });
    let _ = cleanup.join();
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        run_on_own_thread(self.url.clone(), sql);
    }
}
