//! Opening the store a location names; shared by `serve`, `export` and `import`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use errand_store::SharedStore;
use errand_store_postgres::{PgOptions, PgStore};
use errand_store_sqlite::{SqliteOptions, SqliteStore};

use crate::settings::StoreLocation;

/// Opens (and migrates) the store; returns it and a description for people.
///
/// # Errors
/// The store cannot be opened or reached.
pub async fn open(
    location: &StoreLocation,
    data_dir: &Path,
) -> anyhow::Result<(SharedStore, String)> {
    match location {
        StoreLocation::Sqlite(path) => {
            let options = SqliteOptions {
                path: path.clone(),
                ..SqliteOptions::in_dir(data_dir)
            };
            let store = SqliteStore::open(&options)
                .with_context(|| format!("opening {}", path.display()))?;
            // The durability read back from SQLite, so the line `serve` prints says what a
            // commit really promises.
            let desc = format!("sqlite {} {}", path.display(), store.durability());
            Ok((Arc::new(store), desc))
        }
        StoreLocation::Postgres { url, schema } => {
            let store = PgStore::connect(&PgOptions {
                schema: schema.clone(),
                ..PgOptions::new(url)
            })
            .await
            .context("connecting to PostgreSQL")?;
            Ok((Arc::new(store), format!("postgres schema {schema}")))
        }
    }
}
