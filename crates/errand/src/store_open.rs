//! Opening the store a location names; shared by `serve`, `export`, `import` and `tokens`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use errand_store::{SharedStore, StoreOrigin};
use errand_store_postgres::{PgOptions, PgStore};
use errand_store_sqlite::{SqliteOptions, SqliteStore};

use crate::settings::StoreLocation;

/// A store just opened, with what to say about it.
pub struct OpenedStore {
    /// The store.
    pub store: SharedStore,
    /// For people: where it is, how it commits, and whether it was created or found (and,
    /// on SQLite, when it takes no writes), so a store lost and recreated never starts
    /// without a word.
    pub desc: String,
    /// For `GET /v1/nodes`: its kind and location, never credentials.
    pub about: errand_core::StoreAbout,
    /// Whether opening found the store or created it.
    pub origin: StoreOrigin,
}

/// Opens (and migrates) the store.
///
/// # Errors
/// The store cannot be opened or reached.
pub async fn open(location: &StoreLocation, data_dir: &Path) -> anyhow::Result<OpenedStore> {
    open_as(location, data_dir, false).await
}

/// Opens the store; with `existing_only`, a PostgreSQL schema without errand's tables is
/// refused before anything is created in it.
async fn open_as(
    location: &StoreLocation,
    data_dir: &Path,
    existing_only: bool,
) -> anyhow::Result<OpenedStore> {
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
            let mut desc = format!(
                "sqlite {} ({}, {}",
                path.display(),
                store.durability(),
                store.origin()
            );
            if let Err(e) = store.writable() {
                desc.push_str(&format!(", TAKES NO WRITES: {e}"));
            }
            desc.push(')');
            say_origin(store.origin(), &desc);
            let about = errand_core::StoreAbout {
                kind: "sqlite".into(),
                location: path.display().to_string(),
            };
            Ok(OpenedStore {
                origin: store.origin(),
                store: Arc::new(store),
                desc,
                about,
            })
        }
        StoreLocation::Postgres { url, schema } => {
            // The error names host, port, database, user and the cause; never the password.
            let store = PgStore::connect(&PgOptions {
                schema: schema.clone(),
                existing_only,
                ..PgOptions::new(url)
            })
            .await?;
            let target = store.target();
            let desc = format!(
                "postgres {} database {} user {} schema {} ({})",
                target.address,
                target.database,
                target.user,
                schema,
                store.origin()
            );
            say_origin(store.origin(), &desc);
            let about = errand_core::StoreAbout {
                kind: "postgres".into(),
                location: format!("{}/{} schema {schema}", target.address, target.database),
            };
            Ok(OpenedStore {
                origin: store.origin(),
                store: Arc::new(store),
                desc,
                about,
            })
        }
    }
}

/// Opens a store that must already be there, for a command that only reads or changes what
/// is in it (`export`, `tokens list`, `tokens revoke`): a SQLite file or a PostgreSQL
/// schema that holds no store is refused before anything is created. `nothing` says what
/// the command then has not: "nothing to export".
///
/// # Errors
/// There is no store at the location, or it cannot be opened or reached.
pub async fn open_existing(
    location: &StoreLocation,
    data_dir: &Path,
    nothing: &str,
) -> anyhow::Result<OpenedStore> {
    if let StoreLocation::Sqlite(path) = location {
        if !path.try_exists().unwrap_or(false) {
            anyhow::bail!(
                "no store at {}: {nothing} (check --data-dir or --store)",
                path.display()
            );
        }
    }
    match open_as(location, data_dir, true).await {
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<errand_store_postgres::ConnectError>(),
                    Some(errand_store_postgres::ConnectError::NoStore { .. })
                )
            }) =>
        {
            Err(e.context(format!("{nothing} (check --store and --pg-schema)")))
        }
        opened => opened,
    }
}

/// Logs what opening found; a store created at start is a warning, since that is also what
/// a lost data directory or a mistyped path or schema looks like.
fn say_origin(origin: StoreOrigin, desc: &str) {
    match origin {
        StoreOrigin::Existing => tracing::info!(store = %desc, "opened the existing store"),
        StoreOrigin::Created => tracing::warn!(
            store = %desc,
            "created a new, empty store: if this node had jobs, they are not at this location"
        ),
    }
}
