//! Wake-ups between nodes: a node that has heard no other node sends none, and one that
//! hears a node greets it back and wakes it from then on. The other node here is a raw
//! connection listening on the schema's channel and speaking the nodes' payloads
//! (`sender:queue`, and `sender:` for a hello).

mod common;

use std::time::Duration;

use common::open;
use errand_store::conformance::new_job;
use errand_store::{JobInsertManyParams, Store};
use errand_store_postgres::PgStore;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// A connection listening on `channel`, and the payloads it hears.
async fn listen(
    url: &str,
    channel: &str,
) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<String>) {
    let config: tokio_postgres::Config = url.parse().expect("url");
    let (client, mut connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("listening connection");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .expect("listen");
    (client, rx)
}

/// The next payload heard that `wanted` accepts; every payload heard before it, in order.
async fn hear_until(
    heard: &mut mpsc::UnboundedReceiver<String>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> (String, Vec<String>) {
    let mut before = Vec::new();
    loop {
        let payload = tokio::time::timeout(Duration::from_secs(20), heard.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; heard {before:?}"))
            .expect("the listening connection ended");
        if wanted(&payload) {
            return (payload, before);
        }
        before.push(payload);
    }
}

async fn insert(store: &PgStore, queue: &str) {
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![new_job(queue, "k")],
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_sends_no_wake_ups_and_greets_a_node_that_joins() {
    let test = "a_node_alone_sends_no_wake_ups_and_greets_a_node_that_joins";
    let Some((schema, store, _raw)) = open(test).await else {
        return;
    };
    let channel = format!("{}.errand_ready", schema.name);
    let (other, mut heard) = listen(&schema.url, &channel).await;

    // The store's listener says hello when it starts (and every few seconds after).
    let (hello, _) = hear_until(&mut heard, "the store's hello", |p| p.ends_with(':')).await;
    let me = hello.trim_end_matches(':').to_string();

    // Alone (nobody has said hello to it), the store tells nobody about this job.
    insert(&store, "alone").await;

    // A node joins: the store greets it back, and wakes it from then on.
    other
        .execute("SELECT pg_notify($1, 'joiner:')", &[&channel])
        .await
        .expect("the joiner's hello");
    // The greeting comes at once; the store's next hello of its own is seconds away.
    let (_, mut before) = tokio::time::timeout(
        Duration::from_secs(1),
        hear_until(&mut heard, "the store's greeting", |p| p == hello),
    )
    .await
    .expect("the store did not greet the joiner back at once");
    // The greeting is sent once the store has heard the joiner; a periodic hello may come
    // just before it, so the first wake-up may still find the store alone: try again.
    let joined = format!("{me}:joined");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        insert(&store, "joined").await;
        match tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                let payload = heard.recv().await.expect("the listening connection ended");
                if payload == joined {
                    break;
                }
                before.push(payload);
            }
        })
        .await
        {
            Ok(()) => break,
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "the joined node was never woken; heard {before:?}"
            ),
        }
    }
    assert!(
        !before.contains(&format!("{me}:alone")),
        "a node alone sent a wake-up: {before:?}"
    );
}
