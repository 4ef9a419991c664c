//! A store file written by the previous version opens and is upgraded: the tag index and
//! the queue counters are filled from the jobs already there, and kept from then on.

#![expect(
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

use errand_core::{JobId, JobKind, JobState, QueueName};
use errand_store::{JobInsertManyParams, JobListParams, Store};
use errand_store_sqlite::{SqliteOptions, SqliteStore};

/// The migrations of the previous version, as it shipped them.
const PREVIOUS: &[&str] = &[
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_nodes.sql"),
    include_str!("../migrations/0003_schedules.sql"),
    include_str!("../migrations/0004_attempt_lease_token.sql"),
    include_str!("../migrations/0005_schedule_slot_pruning.sql"),
];

/// Writes a store file as the previous version left it: its schema, and jobs in two
/// queues, several states and tags, written with plain SQL.
fn previous_version_file(
    path: &std::path::Path,
) -> Vec<(JobId, &'static str, &'static str, &'static str)> {
    let conn = rusqlite::Connection::open(path).expect("open");
    for sql in PREVIOUS {
        conn.execute_batch(sql).expect("old migration");
    }
    conn.pragma_update(None, "user_version", PREVIOUS.len() as i64)
        .expect("version");
    let jobs: Vec<(JobId, &str, &str, &str)> = vec![
        (JobId::new(), "a", "available", r#"["red"]"#),
        (JobId::new(), "a", "available", r#"["red","blue"]"#),
        (JobId::new(), "a", "running", r#"[]"#),
        (JobId::new(), "a", "dead", r#"["blue"]"#),
        (JobId::new(), "b", "succeeded", r#"["red","red"]"#),
    ];
    for q in ["a", "b"] {
        conn.execute(
            "INSERT INTO queues (name, paused, created_at) VALUES (?1, 0, 0)",
            [q],
        )
        .expect("queue");
    }
    for (id, queue, state, tags) in &jobs {
        conn.execute(
            "INSERT INTO jobs (id, kind, queue, state, payload, priority, run_at, max_attempts, \
             tags, created_at, updated_at) VALUES (?1, 'old', ?2, ?3, '{}', 0, 0, 3, ?4, 0, 0)",
            rusqlite::params![id.as_bytes().as_slice(), queue, state, tags],
        )
        .expect("job");
    }
    jobs
}

fn tagged(jobs: &[(JobId, &str, &str, &str)], tag: &str) -> Vec<JobId> {
    jobs.iter()
        .rev()
        .filter(|(_, _, _, tags)| tags.contains(&format!("\"{tag}\"")))
        .map(|(id, ..)| *id)
        .collect()
}

async fn list_tag(store: &SqliteStore, tag: &str) -> Vec<JobId> {
    store
        .job_list(JobListParams {
            tag: Some(tag.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .iter()
        .map(|j| j.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_version_file_is_upgraded_and_backfilled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteOptions::in_dir(dir.path());
    let jobs = previous_version_file(&options.path);
    let store = SqliteStore::open(&options).expect("the old file opens");

    assert_eq!(list_tag(&store, "red").await, tagged(&jobs, "red"));
    assert_eq!(list_tag(&store, "blue").await, tagged(&jobs, "blue"));
    let old_kind = store
        .job_list(JobListParams {
            kind: Some(JobKind::parse("old").expect("kind")),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(old_kind.len(), jobs.len());
    let queues = store.queue_list().await.expect("queues");
    let a = &queues[0].counts;
    assert_eq!((a.available, a.running, a.dead), (2, 1, 1));
    assert_eq!(queues[1].counts.succeeded, 1);

    // From here on the triggers keep both: a new job joins its tag and its queue's count.
    let mut job = errand_store::conformance::new_job("a", "new");
    job.tags = vec!["red".into()];
    let id = job.id;
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![job],
            idempotency_window: std::time::Duration::from_secs(60),
        })
        .await
        .expect("insert");
    assert_eq!(list_tag(&store, "red").await.first(), Some(&id));
    let a = store
        .queue_get(&QueueName::parse("a").expect("queue"))
        .await
        .expect("queue");
    assert_eq!(a.counts.available, 3);
    assert_eq!(
        store.job_get(id).await.expect("get").state,
        JobState::Available
    );
}
