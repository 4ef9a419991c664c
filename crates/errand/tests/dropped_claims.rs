//! A long-poll claim whose client disconnects while the store is claiming for it: the job
//! goes back to the queue at once instead of staying leased to nobody. PostgreSQL lets the
//! test hold the claim inside the store, deterministically.

mod common;

use std::time::Duration;

use errand_api::{ClaimRequest, EnqueueRequest};
use errand_testkit::{eventually, PgSchema};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::pg_node;

fn claim(wait_ms: u64) -> ClaimRequest {
    ClaimRequest {
        worker: Some("w".into()),
        max: Some(1),
        wait_ms: Some(wait_ms),
        lease_ms: Some(60_000),
        kinds: vec![],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_disconnected_while_the_store_claims_gives_the_job_back() {
    let Some(schema) = PgSchema::create("long_poll_disconnected_while_the_store_claims").await
    else {
        return;
    };
    let (server, _dir) = pg_node(&schema).await;
    let client = server.client().expect("client");
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some("gone".into()),
            ..EnqueueRequest::new("k")
        })
        .await
        .expect("enqueue");

    // An open transaction holds the key of the attempt row the claim will write, so the
    // claim's statement waits inside PostgreSQL until this transaction ends.
    let mut pg = errand_testkit::pg_connect(&schema.url)
        .await
        .expect("connect");
    pg.batch_execute(&format!("SET search_path TO \"{}\"", schema.name))
        .await
        .expect("search path");
    let holder = pg.transaction().await.expect("begin");
    let job_uuid = uuid::Uuid::parse_str(&job.id.to_string()).expect("uuid");
    holder
        .execute(
            "INSERT INTO job_attempts (job_id, attempt, started_at, outcome) VALUES ($1, 1, 0, 'running')",
            &[&job_uuid],
        )
        .await
        .expect("hold the attempt key");
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);

    // The long-poll goes over a raw connection so the test can see the server hang up.
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut gone = TcpStream::connect(&addr).await.expect("connect");
    let body = serde_json::to_string(&claim(20_000)).expect("body");
    let request = format!(
        "POST /v1/queues/gone/claim HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    gone.write_all(request.as_bytes())
        .await
        .expect("send claim");
    let watcher = errand_testkit::pg_connect(&schema.url)
        .await
        .expect("connect");
    eventually(
        "the claim waits inside the store",
        Duration::from_secs(10),
        || async {
            let blocked: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    &[&holder_pid],
                )
                .await
                .expect("blocked")
                .get(0);
            (blocked > 0).then_some(())
        },
    )
    .await;
    // The client goes away while its claim is in the store. The server drops the request
    // and closes the connection: once this read ends, the claim has nobody to answer.
    gone.shutdown().await.expect("hang up");
    let mut heard = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), gone.read_to_end(&mut heard))
        .await
        .expect("the server closes the connection")
        .expect("read");
    assert!(heard.is_empty(), "no answer was sent: {heard:?}");
    holder.rollback().await.expect("rollback");

    let next = client.claim("gone", &claim(5_000)).await.expect("claim");
    assert_eq!(next.jobs.len(), 1, "the job was leased to nobody");
    assert_eq!(next.jobs[0].id, job.id);
    assert_eq!(next.jobs[0].attempt, 1, "the gone claim cost no attempt");
    let attempts = client.attempts(job.id).await.expect("attempts").attempts;
    assert_eq!(attempts.len(), 1);
}
