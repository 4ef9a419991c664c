//! The shared store conformance suite, run against the embedded SQLite store.

use std::sync::Arc;

use errand_core::time::Clock;
use errand_store::conformance::Fixture;
use errand_store_sqlite::{SqliteOptions, SqliteStore};

/// A store in a temp dir whose clock the case drives: SQLite reads every "now" through the
/// [`Clock`] it was opened with, so advancing that clock moves the store's time.
async fn fresh_store() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::adjustable();
    let store = SqliteStore::open(&SqliteOptions {
        clock: clock.clone(),
        ..SqliteOptions::in_dir(dir.path())
    })
    .expect("open store");
    Some(Fixture {
        store: Arc::new(store),
        clock: Arc::new(clock),
        guard: Box::new(dir),
    })
}

errand_store::conformance_suite!(fresh_store);
