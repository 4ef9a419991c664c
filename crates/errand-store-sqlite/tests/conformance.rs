//! The shared store conformance suite, run against the embedded SQLite store.

use std::sync::Arc;

use errand_store::conformance::Fixture;
use errand_store_sqlite::{SqliteOptions, SqliteStore};

async fn fresh_store() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open store");
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(dir),
    })
}

errand_store::conformance_suite!(fresh_store);
