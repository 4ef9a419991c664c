//! The store cannot vanish silently, and readiness means "can accept a job".
//!
//! A real server on a real SQLite file: its data directory is deleted, or its file replaced
//! by another, while it runs. SQLite would go on committing into the file it holds open,
//! which no restart finds; errand must instead refuse every write and readiness with 503
//! from the first write after, keep liveness, and leave exactly the jobs it acknowledged in
//! the original file (kept reachable here through hard links, then opened with rusqlite).
//! A store that can only be opened read-only starts unready and refuses writes; a
//! PostgreSQL database that turns read-only makes the node unready until it is writable.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use errand_api::{BatchEnqueueRequest, EnqueueRequest};
use errand_client::Client;
use errand_testkit::{eventually, PgDatabase, ServerProcess};
use serde_json::json;

use common::{bin, Raw};

const DB: &str = "errand.sqlite3";

async fn enqueue(
    client: &Client,
    marker: &str,
) -> Result<errand_core::Job, errand_client::ClientError> {
    let mut req = EnqueueRequest::new("vanish");
    req.payload = Some(json!({ "marker": marker }));
    client.enqueue(&req).await
}

/// Enqueues `n` jobs that must be kept; returns their markers.
async fn acknowledged(client: &Client, n: usize) -> BTreeSet<String> {
    let mut markers = BTreeSet::new();
    for i in 0..n {
        let marker = format!("before-{i}");
        enqueue(client, &marker)
            .await
            .expect("enqueue while the store is whole");
        markers.insert(marker);
    }
    markers
}

/// Hard links to the store's database file and its WAL, in `keep`: the original files,
/// still there to open after the data directory is gone.
fn keep_original(data_dir: &Path, keep: &Path) {
    std::fs::create_dir_all(keep).expect("keep dir");
    for name in [DB.to_string(), format!("{DB}-wal")] {
        std::fs::hard_link(data_dir.join(&name), keep.join(&name)).expect("link the original");
    }
}

/// The markers of every job in the SQLite file at `path`.
fn markers_in(path: &Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(path).expect("open the original file");
    let mut stmt = conn.prepare("SELECT payload FROM jobs").expect("prepare");
    let payloads = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    payloads
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(p).expect("payload JSON");
            v["marker"].as_str().expect("marker").to_string()
        })
        .collect()
}

/// Writes answer 503 saying `says` (a single enqueue and a batch, each refused whole),
/// `/readyz` answers 503 with the same reason, `/healthz` stays 200, and reads still work.
async fn assert_refuses_writes_and_readiness(server: &ServerProcess, says: &str) {
    let client = server.client().expect("client");
    let e = enqueue(&client, "after-0")
        .await
        .expect_err("the first enqueue after is refused, never acknowledged");
    assert_eq!(e.status(), Some(503), "{e}");
    assert_eq!(e.code(), Some("unavailable"), "{e}");
    assert!(e.to_string().contains(says), "{e}");
    let batch = BatchEnqueueRequest {
        jobs: (1..4)
            .map(|i| {
                let mut req = EnqueueRequest::new("vanish");
                req.payload = Some(json!({ "marker": format!("after-{i}") }));
                req
            })
            .collect(),
    };
    let e = client
        .enqueue_batch(&batch)
        .await
        .expect_err("a batch after is refused");
    assert_eq!(e.status(), Some(503), "{e}");

    let raw = Raw::new(server);
    let (status, body) = raw.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(says),
        "{body}"
    );
    let (status, body) = raw.get("/healthz").await;
    assert_eq!(status, 200, "liveness stays: {body}");
    let (status, body) = raw.get("/v1/jobs?limit=1").await;
    assert_eq!(status, 200, "reads still work: {body}");
}

/// The server's store line, which start has read with the rest of its start block.
fn store_line(server: &ServerProcess) -> String {
    let lines = server.stdout_lines();
    assert!(
        lines[0].contains("http://"),
        "the first line is still the address: {lines:?}"
    );
    lines
        .iter()
        .find(|l| l.contains("store: sqlite"))
        .cloned()
        .unwrap_or_else(|| panic!("no store line: {lines:?}"))
}

/// A server on `data` in a fresh temporary directory, which also holds what the test keeps.
async fn server_on_fresh_dir() -> (tempfile::TempDir, PathBuf, ServerProcess) {
    let base = tempfile::tempdir().expect("temp dir");
    let data = base.path().join("data");
    let server = ServerProcess::start_in(&bin(), &data, &[])
        .await
        .expect("start");
    (base, data, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_data_directory_refuses_writes_and_the_next_start_says_the_store_is_new() {
    let (base, data, mut server) = server_on_fresh_dir().await;
    assert!(
        store_line(&server).contains("created new and empty"),
        "{:?}",
        server.stdout_lines()
    );
    let before = acknowledged(&server.client().expect("client"), 20).await;
    server.restart().await.expect("restart");
    assert!(
        store_line(&server).contains("opened existing"),
        "{:?}",
        server.stdout_lines()
    );

    keep_original(&data, &base.path().join("keep"));
    std::fs::remove_dir_all(&data).expect("delete the data directory");
    assert_refuses_writes_and_readiness(&server, "is gone").await;
    server.kill9().await;
    assert_eq!(markers_in(&base.path().join("keep").join(DB)), before);

    // The next start finds nothing there and says so.
    server.restart().await.expect("restart");
    assert!(
        store_line(&server).contains("created new and empty"),
        "{:?}",
        server.stdout_lines()
    );
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_store_file_refuses_writes_and_readiness() {
    let (base, data, mut server) = server_on_fresh_dir().await;
    let before = acknowledged(&server.client().expect("client"), 20).await;

    keep_original(&data, &base.path().join("keep"));
    let other = data.join("other.sqlite3");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE unrelated (x INTEGER)"))
        .expect("another SQLite file");
    std::fs::rename(&other, data.join(DB)).expect("replace the store file");
    assert_refuses_writes_and_readiness(&server, "was replaced by another file").await;
    server.kill9().await;
    assert_eq!(markers_in(&base.path().join("keep").join(DB)), before);
}

/// A tmpfs of our own, to remount read-only: as root, file modes do not stop writes.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "errand-read-only"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a tmpfs (root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_path_buf())
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: a killed server may still hold files open for a moment.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_starts_unready_and_refuses_writes() {
    let base = tempfile::tempdir().expect("temp dir");
    let mount = Mount::tmpfs(&base.path().join("disk"));
    let data = base.path().join("disk").join("data");
    let mut server = ServerProcess::start_in(&bin(), &data, &[])
        .await
        .expect("start");
    let before = acknowledged(&server.client().expect("client"), 5).await;
    // Killed, so the WAL and its index stay: SQLite can then open the file read-only.
    server.kill9().await;
    mount.remount("ro");

    let mut server = ServerProcess::start_unready_in(&bin(), &data, &[])
        .await
        .expect("a read-only store still starts, to be read");
    let line = store_line(&server);
    assert!(line.contains("TAKES NO WRITES"), "{line}");
    assert_refuses_writes_and_readiness(&server, "read-only").await;
    let stored = common::all_jobs(&server.client().expect("client"), Default::default()).await;
    assert_eq!(stored.len(), before.len(), "the jobs are there to read");
    server.kill9().await;

    // Without its WAL index SQLite cannot read the file without writing: errand does not
    // start, and says why.
    mount.remount("rw");
    rusqlite::Connection::open(data.join(DB))
        .and_then(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
        .expect("checkpoint; closing the last connection removes the WAL");
    assert!(!data.join(format!("{DB}-shm")).exists());
    mount.remount("ro");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("errand stops by itself")
    .expect("run errand");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it refused to start: {stderr}");
    assert!(
        stderr.contains("could only be opened read-only"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgres_database_is_not_ready_until_it_takes_writes_again() {
    let Some(db) = PgDatabase::create("a_read_only_postgres_database_is_not_ready").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start_in(&bin(), dir.path(), &["--store", &db.url])
        .await
        .expect("start a node");
    let client = server.client().expect("client");
    enqueue(&client, "writable").await.expect("enqueue");

    // New sessions are read-only; ending the node's sessions makes it open new ones, as a
    // failover onto a standby would.
    let end_sessions = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    );
    db.admin(&format!(
        "ALTER DATABASE \"{}\" SET default_transaction_read_only = on; {end_sessions}",
        db.name
    ))
    .await;
    let raw = Raw::new(&server);
    eventually(
        "/readyz answers 503 saying the database is read-only",
        Duration::from_secs(30),
        || async {
            let (status, body) = raw.get("/readyz").await;
            let says = body["error"]["message"].as_str().unwrap_or_default();
            (status == 503 && says.contains("transaction_read_only")).then_some(())
        },
    )
    .await;
    let e = enqueue(&client, "read-only")
        .await
        .expect_err("a read-only database takes no job");
    assert_eq!(e.status(), Some(503), "{e}");
    let (status, body) = raw.get("/healthz").await;
    assert_eq!(status, 200, "liveness stays: {body}");

    db.admin(&format!(
        "ALTER DATABASE \"{}\" RESET default_transaction_read_only; {end_sessions}",
        db.name
    ))
    .await;
    eventually(
        "ready again once the database takes writes",
        Duration::from_secs(30),
        || async { client.ready().await.unwrap_or(false).then_some(()) },
    )
    .await;
    enqueue(&client, "writable-again").await.expect("enqueue");
    server.kill9().await;
}
