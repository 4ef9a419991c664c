//! PostgreSQL crashes and comes back under load: the nodes report not ready meanwhile,
//! recover by themselves, and no acknowledged job is lost. A node's LISTEN connection cut
//! again and again comes back at once each time.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use errand_api::{ClaimRequest, EnqueueRequest, JobListQuery, SettleRequest};
use errand_core::{JobId, JobState};
use errand_testkit::{eventually, PgCluster, ServerProcess};
use tokio::sync::Mutex;

use common::bin;

fn cluster_or_skip() -> Option<PgCluster> {
    match PgCluster::start() {
        Ok(c) => Some(c),
        Err(e) if std::env::var("ERRAND_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("a private PostgreSQL cluster is required: {e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED postgres_restart: {e} ***\n");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_postgres_crash_without_losing_acknowledged_jobs() {
    let Some(cluster) = cluster_or_skip() else {
        return;
    };
    let url = cluster.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let node = ServerProcess::start_in(&bin(), dir.path(), &["--store", &url])
        .await
        .expect("start node");
    let client = node.client().expect("client");
    let acked = Arc::new(Mutex::new(Vec::<JobId>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        producers.push(tokio::spawn(async move {
            let mut failures = 0u64;
            let mut not_retry = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match client.enqueue(&EnqueueRequest::new("survive")).await {
                    Ok(job) => acked.lock().await.push(job.id),
                    // Not acknowledged: the job may or may not exist; it is not owed.
                    Err(e) => {
                        failures += 1;
                        // A lost database is 503 "retry"; a 500 would tell clients it is a
                        // bug that retrying does not cure.
                        if e.status().is_some_and(|s| s != 503) {
                            not_retry.push(e.to_string());
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (failures, not_retry)
        }));
    }
    eventually(
        "some jobs acknowledged before the crash",
        Duration::from_secs(20),
        || async { (acked.lock().await.len() >= 500).then_some(()) },
    )
    .await;
    let before_crash = acked.lock().await.len();
    cluster.stop().expect("crash PostgreSQL");
    eventually(
        "the node reports not ready",
        Duration::from_secs(20),
        || async { (!client.ready().await.unwrap_or(true)).then_some(()) },
    )
    .await;
    cluster.start_again().expect("start PostgreSQL again");
    eventually(
        "the node is ready again",
        Duration::from_secs(30),
        || async { client.ready().await.unwrap_or(false).then_some(()) },
    )
    .await;
    eventually(
        "enqueues are acknowledged again",
        Duration::from_secs(30),
        || async { (acked.lock().await.len() >= before_crash + 500).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = 0;
    let mut not_retry = Vec::new();
    for p in producers {
        let (f, other) = p.await.expect("join");
        failures += f;
        not_retry.extend(other);
    }
    assert!(failures > 0, "the crash was noticed by clients");
    assert!(
        not_retry.is_empty(),
        "the crash answered other than 503: {not_retry:?}"
    );
    let acked: HashSet<JobId> = acked.lock().await.iter().copied().collect();
    // Work everything off through the recovered node.
    let mut completed = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = client
            .claim(
                "default",
                &ClaimRequest {
                    max: Some(500),
                    wait_ms: Some(200),
                    ..Default::default()
                },
            )
            .await
            .expect("claim")
            .jobs;
        if got.is_empty() && acked.is_subset(&completed) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "work did not finish"
        );
        if got.is_empty() {
            continue;
        }
        client
            .settle(&SettleRequest::complete_all(&got))
            .await
            .expect("settle");
        completed.extend(got.iter().map(|j| j.id));
    }
    let lost: Vec<_> = acked.difference(&completed).collect();
    assert!(lost.is_empty(), "{} acknowledged jobs lost", lost.len());
    let page = client
        .jobs(&JobListQuery {
            state: Some("succeeded".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.jobs[0].state, JobState::Succeeded);
}

/// The test's own hello on the channel, as a node's would be: a sender and no queue.
const TESTER_HELLO: &str = "tester:";

/// Listens on `channel` from a connection of its own: each hello a node says there (a
/// payload `sender:` with no queue; the test's own left out), with the process id of the
/// database backend that said it, which is the node's LISTEN connection.
async fn hear_hellos(
    url: &str,
    channel: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<i32>,
) {
    let (config, tls) = errand_store_postgres::pg_config(url).expect("a PostgreSQL URL");
    let (client, mut connection) = config.connect(tls).await.expect("connect");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                if n.payload().ends_with(':') && n.payload() != TESTER_HELLO {
                    let _ = tx.send(n.process_id());
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .expect("listen");
    (client, rx)
}

/// The backend of the next hello heard from another backend than `not`.
async fn next_hello_from_another(
    hellos: &mut tokio::sync::mpsc::UnboundedReceiver<i32>,
    not: Option<i32>,
) -> i32 {
    loop {
        let pid = tokio::time::timeout(Duration::from_secs(30), hellos.recv())
            .await
            .expect("a hello within 30 s")
            .expect("the listening connection ended");
        if Some(pid) != not {
            return pid;
        }
    }
}

/// Times the test cuts the node's LISTEN connection: without the waits starting over, the
/// last wait would be 3.2 s instead of 100 ms.
const CUTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_connection_cut_again_and_again_comes_back_after_the_first_wait_each_time() {
    let Some(schema) = errand_testkit::PgSchema::create("listen_cut_again_and_again").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("errand.log");
    let mut node = ServerProcess::start_logging_in(
        &bin(),
        dir.path(),
        &["--store", &schema.url, "--pg-schema", &schema.name],
        &log,
    )
    .await
    .expect("start a node");
    let channel = format!("{}.errand_ready", schema.name);
    let (raw, mut hellos) = hear_hellos(&schema.url, &channel).await;
    // A hello from a node it has not heard makes the node greet back from its LISTEN
    // connection at once.
    raw.execute("SELECT pg_notify($1, $2)", &[&channel, &TESTER_HELLO])
        .await
        .expect("say hello");
    let mut listener = next_hello_from_another(&mut hellos, None).await;
    for _ in 0..CUTS {
        raw.execute("SELECT pg_terminate_backend($1)", &[&listener])
            .await
            .expect("cut the LISTEN connection");
        // A new connection greets the channel as soon as it listens.
        listener = next_hello_from_another(&mut hellos, Some(listener)).await;
    }
    assert!(node.terminate().await, "the node stops cleanly");
    let log = std::fs::read_to_string(&log).expect("the node's log");
    let waits: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("LISTEN connection lost"))
        .collect();
    assert_eq!(waits.len(), CUTS, "one lost connection per cut: {waits:#?}");
    for wait in &waits {
        assert!(
            wait.contains("retry_in=100ms"),
            "each cut waits the first wait only: {waits:#?}"
        );
        // The server's reason, not only the driver's "db error".
        assert!(
            wait.contains("terminating connection due to administrator command"),
            "{waits:#?}"
        );
    }
}
