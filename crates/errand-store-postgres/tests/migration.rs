//! A schema written by the previous version is upgraded in place: the tag index and the
//! queue counts are filled from the jobs already there, and kept from then on.

use std::time::Duration;

use errand_core::{JobId, JobKind, QueueName};
use errand_store::{JobInsertManyParams, JobListParams, Store};
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;

/// The migrations of the previous version, as it shipped them.
const PREVIOUS: &[&str] = &[
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_schedules.sql"),
    include_str!("../migrations/0003_attempt_lease_token.sql"),
    include_str!("../migrations/0004_schedule_slot_pruning.sql"),
];

type OldJob = (JobId, &'static str, &'static str, &'static str);

/// Lays out `schema` as the previous version left it: its migrations recorded, and jobs in
/// two queues, several states and tags, written with plain SQL.
async fn previous_version_schema(schema: &PgSchema) -> Vec<OldJob> {
    let (client, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; SET search_path TO \"{0}\"; \
             CREATE TABLE errand_migrations (version integer PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
            schema.name
        ))
        .await
        .expect("schema");
    for (i, sql) in PREVIOUS.iter().enumerate() {
        client.batch_execute(sql).await.expect("old migration");
        client
            .execute(
                "INSERT INTO errand_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .await
            .expect("record");
    }
    let jobs: Vec<OldJob> = vec![
        (JobId::new(), "a", "available", r#"["red"]"#),
        (JobId::new(), "a", "available", r#"["red","blue"]"#),
        (JobId::new(), "a", "running", r#"[]"#),
        (JobId::new(), "a", "dead", r#"["blue"]"#),
        (JobId::new(), "b", "succeeded", r#"["red","red"]"#),
    ];
    client
        .batch_execute("INSERT INTO queues (name, created_at) VALUES ('a', 0), ('b', 0)")
        .await
        .expect("queues");
    for (id, queue, state, tags) in &jobs {
        client
            .execute(
                "INSERT INTO jobs (id, kind, queue, state, payload, priority, run_at, max_attempts, \
                 tags, created_at, updated_at) \
                 VALUES ($1, 'old', $2, $3, '{}', 0, 0, 3, $4::text::jsonb, 0, 0)",
                &[&id.0, queue, state, tags],
            )
            .await
            .expect("job");
    }
    jobs
}

fn tagged(jobs: &[OldJob], tag: &str) -> Vec<JobId> {
    jobs.iter()
        .rev()
        .filter(|(_, _, _, tags)| tags.contains(&format!("\"{tag}\"")))
        .map(|(id, ..)| *id)
        .collect()
}

async fn list_tag(store: &PgStore, tag: &str) -> Vec<JobId> {
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
async fn a_previous_version_schema_is_upgraded_and_backfilled() {
    let Some(schema) = PgSchema::create("a_previous_version_schema_is_upgraded").await else {
        return;
    };
    let jobs = previous_version_schema(&schema).await;
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size: 2,
        ..PgOptions::new(&schema.url)
    })
    .await
    .expect("the old schema opens");

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
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
    assert_eq!(list_tag(&store, "red").await.first(), Some(&id));
    let a = store
        .queue_get(&QueueName::parse("a").expect("queue"))
        .await
        .expect("queue");
    assert_eq!(a.counts.available, 3);
}
