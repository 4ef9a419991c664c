//! A node that stops cleanly says goodbye to PostgreSQL on every connection it opened,
//! so that restarts read as clients leaving, not as broken connections in the database's
//! log. Its connections go through a proxy here that records how each one ended.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_api::{ClaimRequest, EnqueueRequest, SettleRequest};
use errand_testkit::{eventually, PgSchema, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::bin;

/// PostgreSQL's `Terminate` message: what a client sends last when it leaves.
const TERMINATE: &[u8] = b"X\0\0\0\x04";

/// How one proxied connection ended, as the client's side of it.
#[derive(Debug, Clone)]
struct Ending {
    /// The last bytes the client sent (up to five).
    tail: Vec<u8>,
    /// The client closed its side (end of file) rather than failing or resetting it.
    closed: bool,
}

/// Every connection the proxy took, and how the ended ones ended.
#[derive(Default)]
struct Proxied {
    taken: usize,
    ended: Vec<Ending>,
}

/// Forwards connections from a free local port to `upstream`, recording each client's
/// last bytes; returns the port's address.
async fn proxy(upstream: String, seen: Arc<Mutex<Proxied>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            seen.lock().expect("lock").taken += 1;
            let seen = seen.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    let failed = Ending {
                        tail: b"no upstream".to_vec(),
                        closed: false,
                    };
                    seen.lock().expect("lock").ended.push(failed);
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                    let _ = to_client.shutdown().await;
                });
                let mut tail = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                let closed = loop {
                    match from_client.read(&mut buf).await {
                        Ok(0) => break true,
                        Ok(n) => {
                            tail.extend_from_slice(&buf[..n]);
                            let keep = tail.len().saturating_sub(TERMINATE.len());
                            tail.drain(..keep);
                            if to_server.write_all(&buf[..n]).await.is_err() {
                                break false;
                            }
                        }
                        Err(_) => break false,
                    }
                };
                let _ = to_server.shutdown().await;
                seen.lock()
                    .expect("lock")
                    .ended
                    .push(Ending { tail, closed });
            });
        }
    });
    addr
}

/// `url` with its host and port replaced by `addr`, and TLS off, so the proxy reads the
/// protocol's messages.
fn through(url: &str, addr: &str) -> String {
    let start = url
        .find('@')
        .map_or_else(|| url.find("://").map_or(0, |i| i + 3), |i| i + 1);
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!(
        "{}{addr}{}{joiner}sslmode=disable",
        &url[..start],
        &url[end..]
    )
}

/// The `host:port` of `url`.
fn upstream_of(url: &str) -> String {
    let config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// A fresh schema named for `test`, the proxy's record, the URL through the proxy, and a
/// working directory; `None` when no PostgreSQL is reachable (and none is required).
async fn proxied(test: &str) -> Option<(PgSchema, Arc<Mutex<Proxied>>, String, tempfile::TempDir)> {
    let schema = PgSchema::create(test).await?;
    let seen = Arc::new(Mutex::new(Proxied::default()));
    let addr = proxy(upstream_of(&schema.url), seen.clone()).await;
    let url = through(&schema.url, &addr);
    let dir = tempfile::tempdir().expect("temp dir");
    Some((schema, seen, url, dir))
}

/// Waits until every connection the proxy took has ended; how they ended.
async fn endings(seen: &Arc<Mutex<Proxied>>) -> Vec<Ending> {
    eventually(
        "every proxied connection ends",
        Duration::from_secs(10),
        || {
            let seen = seen.clone();
            async move {
                let s = seen.lock().expect("lock");
                (s.ended.len() == s.taken).then(|| s.ended.clone())
            }
        },
    )
    .await
}

/// Fails unless each connection's client sent `Terminate` last and then closed its side.
fn assert_goodbyes(ended: &[Ending], at_least: usize) {
    assert!(
        ended.len() >= at_least,
        "only {} connections: {ended:?}",
        ended.len()
    );
    for e in ended {
        assert!(
            e.closed && e.tail == TERMINATE,
            "a connection ended without a goodbye: {e:?} (of {ended:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_commands_say_goodbye_too() {
    let Some((schema, seen, url, dir)) = proxied("postgres_goodbye_cli").await else {
        return;
    };
    let file = dir.path().join("export.jsonl");
    let file = file.to_str().expect("a UTF-8 path");
    let store = ["--store", &url, "--pg-schema", &schema.name];
    for command in [
        &["tokens", "create", "--name", "goodbye", "--scopes", "admin"][..],
        &["tokens", "list"],
        &["export", "--file", file],
        &["import", "--file", file],
    ] {
        let out = tokio::process::Command::new(bin())
            .args(command)
            .args(store)
            .current_dir(dir.path())
            .output()
            .await
            .expect("run errand");
        assert!(
            out.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each command opens its store: a migration connection and a pooled one at least.
    assert_goodbyes(&endings(&seen).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_says_goodbye_on_every_postgres_connection() {
    let Some((schema, seen, url, dir)) = proxied("postgres_goodbye").await else {
        return;
    };
    let log = dir.path().join("errand.log");
    let mut node = ServerProcess::start_logging_in(
        &bin(),
        dir.path(),
        &["--store", &url, "--pg-schema", &schema.name],
        &log,
    )
    .await
    .expect("start a node through the proxy");
    // Some work, so that the pool holds more than one connection.
    let client = node.client().expect("client");
    for _ in 0..4 {
        client
            .enqueue(&EnqueueRequest::new("goodbye"))
            .await
            .expect("enqueue");
    }
    let claimed = client
        .claim(
            "default",
            &ClaimRequest {
                max: Some(4),
                ..Default::default()
            },
        )
        .await
        .expect("claim");
    client
        .settle(&SettleRequest::complete_all(&claimed.jobs))
        .await
        .expect("settle");
    assert!(node.terminate().await, "the node stops cleanly on SIGTERM");
    // The migration's connection, the listener's and the pool's.
    assert_goodbyes(&endings(&seen).await, 3);
    // Each ended by saying goodbye, none by running out of time for it.
    let log = std::fs::read_to_string(&log).expect("the node's log");
    assert!(log.contains("errand::serve: stopped"), "{log}");
    for late in [
        "did not end after its goodbye",
        "had not ended by the end of a clean stop",
    ] {
        assert!(!log.contains(late), "{late}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_after_its_store_opened_says_goodbye_too() {
    let Some((schema, seen, url, dir)) = proxied("postgres_goodbye_failed_start").await else {
        return;
    };
    // Tokens required on a store that has none: the start fails once the store is open.
    // A node that started anyway is killed when the deadline drops it.
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--require-auth"])
            .args(["--store", &url, "--pg-schema", &schema.name])
            .env_remove("ERRAND_ADMIN_TOKEN")
            .current_dir(dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the start fails by itself")
    .expect("run errand serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start fails: {stderr}");
    assert!(stderr.contains("the store has none"), "{stderr}");
    // The migration's connection and the pool's at least.
    assert_goodbyes(&endings(&seen).await, 2);
}
