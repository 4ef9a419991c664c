//! A store file written by the previous version opens and is upgraded: the tag index and
//! the queue counters are filled from the jobs already there, and kept from then on.

use std::sync::Arc;

use errand_store::conformance::{assert_upgraded, previous_version_jobs, OldJob};
use errand_store::SharedStore;
use errand_store_sqlite::{SqliteOptions, SqliteStore};

/// The migrations of the previous version, as it shipped them.
const PREVIOUS: &[&str] = &[
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_nodes.sql"),
    include_str!("../migrations/0003_schedules.sql"),
    include_str!("../migrations/0004_attempt_lease_token.sql"),
    include_str!("../migrations/0005_schedule_slot_pruning.sql"),
];

/// Writes a store file as the previous version left it: its schema and `jobs`, written
/// with plain SQL.
fn previous_version_file(path: &std::path::Path, jobs: &[OldJob]) {
    let conn = rusqlite::Connection::open(path).expect("open");
    for sql in PREVIOUS {
        conn.execute_batch(sql).expect("old migration");
    }
    conn.pragma_update(None, "user_version", PREVIOUS.len() as i64)
        .expect("version");
    for q in ["a", "b"] {
        conn.execute(
            "INSERT INTO queues (name, paused, created_at) VALUES (?1, 0, 0)",
            [q],
        )
        .expect("queue");
    }
    for (id, queue, state, tags) in jobs {
        conn.execute(
            "INSERT INTO jobs (id, kind, queue, state, payload, priority, run_at, max_attempts, \
             tags, created_at, updated_at) VALUES (?1, 'old', ?2, ?3, '{}', 0, 0, 3, ?4, 0, 0)",
            rusqlite::params![id.as_bytes().as_slice(), queue, state, tags],
        )
        .expect("job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_version_file_is_upgraded_and_backfilled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteOptions::in_dir(dir.path());
    let jobs = previous_version_jobs();
    previous_version_file(&options.path, &jobs);
    let store = SqliteStore::open(&options).expect("the old file opens");
    let store: SharedStore = Arc::new(store);
    assert_upgraded(&store, &jobs).await;
}
