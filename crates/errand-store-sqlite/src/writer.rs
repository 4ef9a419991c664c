//! The writer thread: owns the only write connection and group-commits.
//!
//! Each write is a closure that runs inside its own savepoint, so one failing operation is
//! rolled back alone while the rest of the group commits. Callers are answered after
//! `COMMIT` returns, which with `synchronous=FULL` means the WAL is on disk.
//!
//! Two failures must not turn into half-kept groups:
//! - After `SQLITE_FULL` or an I/O error SQLite may roll back the whole group transaction by
//!   itself. A `SAVEPOINT` opened after that starts a transaction of its own and its
//!   `RELEASE` commits it, while the group's callers hear an error. So the writer checks
//!   [`Connection::is_autocommit`] after every operation: once the group transaction is
//!   gone, no further operation of the group runs and every caller of the group is told
//!   `Unavailable`; nothing of the group stays. The same holds when a savepoint cannot be
//!   ended: the group is rolled back rather than committed with a failed write inside.
//! - An operation that panics is caught, rolled back to its savepoint and answered with
//!   `Internal`; the writer thread and the rest of the group carry on.

use std::panic::{self, AssertUnwindSafe};
use std::thread;

use errand_store::StoreError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::fault::{db_error, QResult};

/// Writes gathered into one transaction at most. Large enough that a burst of concurrent
/// enqueues shares one fsync; small enough that one group's latency stays in milliseconds.
const MAX_GROUP: usize = 1024;

/// Writes that may wait for the writer before callers are held back. Sixteen full groups:
/// the queue absorbs a burst from thousands of concurrent requests (the writer drains up to
/// [`MAX_GROUP`] per commit) while bounding what a stalled disk can pile up in memory. A
/// full queue only makes callers wait in `send`; nothing is refused.
const QUEUE_DEPTH: usize = 16 * MAX_GROUP;

type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type WriteOp = Box<dyn FnOnce(&Connection) -> (bool, Finish) + Send>;

/// Hands closures to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    ops: mpsc::Sender<WriteOp>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection) -> Result<Self, StoreError> {
        let (ops, rx) = mpsc::channel(QUEUE_DEPTH);
        thread::Builder::new()
            .name("errand-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { ops })
    }

    /// Runs `f` in the next group commit and answers once that commit is durable.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> QResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op: WriteOp = Box::new(move |conn| {
            let outcome = match panic::catch_unwind(AssertUnwindSafe(|| f(conn))) {
                Ok(outcome) => outcome.map_err(StoreError::from),
                Err(payload) => {
                    let what = panic_text(payload.as_ref());
                    tracing::error!(panic = %what, "a SQLite write panicked; it is rolled back");
                    Err(StoreError::Internal(format!("a write panicked: {what}")))
                }
            };
            let ok = outcome.is_ok();
            let finish: Finish = Box::new(move |commit| {
                let _ = tx.send(commit.and(outcome));
            });
            (ok, finish)
        });
        self.ops
            .send(op)
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        // A dropped reply: the group this write belonged to was abandoned before it ran
        // (its transaction could not begin or was rolled back), or the writer stopped.
        rx.await.map_err(|_| {
            StoreError::Unavailable("the SQLite writer could not run this write".into())
        })?
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<WriteOp>) {
    let mut group: Vec<WriteOp> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        commit_group(&conn, &mut group);
    }
    tracing::debug!("SQLite writer stopped");
}

fn commit_group(conn: &Connection, group: &mut Vec<WriteOp>) {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        // Dropping an op drops its reply channel: its caller hears `Unavailable`.
        tracing::error!(error = %db_error(e), "SQLite writer could not begin a transaction");
        group.clear();
        return;
    }
    let mut finishers: Vec<Finish> = Vec::with_capacity(group.len());
    // Set once the group can no longer be committed as its callers will be told.
    let mut broken: Option<String> = None;
    let mut ops = group.drain(..);
    for op in ops.by_ref() {
        if let Err(e) = run_cached(conn, "SAVEPOINT op") {
            // Nothing of this op ran; dropping it answers its caller `Unavailable`.
            tracing::error!(error = %db_error(e), "SQLite writer could not open a savepoint");
        } else {
            let (ok, finish) = op(conn);
            finishers.push(finish);
            let end = if ok {
                run_cached(conn, "RELEASE op")
            } else {
                run_cached(conn, "ROLLBACK TO op").and_then(|_| run_cached(conn, "RELEASE op"))
            };
            if let Err(e) = end {
                // A failed write whose savepoint did not roll back would be committed with
                // the group while its caller hears an error: give the whole group up.
                broken = Some(format!("a savepoint could not be ended: {e}"));
            }
        }
        if conn.is_autocommit() {
            broken = Some("SQLite rolled back the transaction by itself".into());
        }
        if broken.is_some() {
            break;
        }
    }
    let commit = if let Some(why) = broken {
        // The ops not yet run are dropped (their callers hear `Unavailable`); those that
        // ran are rolled back and answered with the same.
        let dropped = ops.count();
        tracing::error!(
            ran = finishers.len(),
            dropped,
            reason = %why,
            "SQLite writer gives up the group; nothing of it is kept"
        );
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Err(StoreError::Unavailable(format!(
            "the write was rolled back with its group: {why}"
        )))
    } else {
        drop(ops);
        let commit = run_cached(conn, "COMMIT").map_err(db_error);
        if let Err(e) = &commit {
            tracing::error!(error = %e, "SQLite commit failed; the group is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
        }
        commit
    };
    for finish in finishers {
        finish(commit.clone());
    }
}

/// What a panic said, for the log and the caller.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Runs a parameterless statement through the statement cache: the writer issues
/// `SAVEPOINT`/`RELEASE` twice per write, and parsing them each time showed in profiles.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    fn writer_on_temp_file() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("w.sqlite3")).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v TEXT NOT NULL);")
            .expect("schema");
        (dir, Writer::start(conn).expect("writer"))
    }

    /// Holds the writer inside one operation until the returned sender is dropped or sent
    /// to, so the writes queued meanwhile form the next group together.
    async fn hold_writer(writer: &Writer) -> (std_mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, held) = std_mpsc::channel::<()>();
        let (entered_tx, entered) = oneshot::channel();
        let w = writer.clone();
        let holder = tokio::spawn(async move {
            w.write(move |_| {
                let _ = entered_tx.send(());
                let _ = held.recv();
                Ok(())
            })
            .await
            .expect("the holding write commits");
        });
        entered.await.expect("the writer runs the holding write");
        (release, holder)
    }

    /// Waits until `n` writes sit in the writer's queue.
    async fn wait_queued(writer: &Writer, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.ops.capacity() > QUEUE_DEPTH - n {
            assert!(Instant::now() < deadline, "writes never reached the queue");
            tokio::task::yield_now().await;
        }
    }

    fn insert(writer: &Writer, v: &'static str) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let w = writer.clone();
        tokio::spawn(async move {
            w.write(move |conn| {
                conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                Ok(())
            })
            .await
        })
    }

    async fn rows(writer: &Writer) -> Vec<String> {
        writer
            .write(|conn| {
                let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<String>, _>>()?)
            })
            .await
            .expect("read rows")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_rolled_back_by_sqlite_keeps_nothing_and_fails_every_caller() {
        let (_dir, writer) = writer_on_temp_file();
        let (release, holder) = hold_writer(&writer).await;
        let before = insert(&writer, "before");
        wait_queued(&writer, 1).await;
        let w = writer.clone();
        let failing = tokio::spawn(async move {
            w.write(|conn| {
                conn.execute("INSERT INTO t (v) VALUES ('failing')", [])?;
                // What SQLite does by itself after SQLITE_FULL or an I/O error in a
                // statement: the whole transaction is rolled back, and the statement fails.
                conn.execute_batch("ROLLBACK")?;
                Err(StoreError::Unavailable("database or disk is full".into()).into())
            })
            .await
        });
        wait_queued(&writer, 2).await;
        let after = insert(&writer, "after");
        wait_queued(&writer, 3).await;
        drop(release);
        holder.await.expect("join");
        for (name, t) in [("before", before), ("failing", failing), ("after", after)] {
            let outcome = t.await.expect("join");
            assert!(
                matches!(outcome, Err(StoreError::Unavailable(_))),
                "the `{name}` write of the rolled-back group was answered {outcome:?}"
            );
        }
        assert_eq!(
            rows(&writer).await,
            Vec::<String>::new(),
            "a write of a failed group was kept"
        );
        insert(&writer, "later")
            .await
            .expect("join")
            .expect("the writer works on after the failed group");
        assert_eq!(rows(&writer).await, vec!["later".to_string()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_whose_savepoint_cannot_be_rolled_back_fails_its_group() {
        let (_dir, writer) = writer_on_temp_file();
        let (release, holder) = hold_writer(&writer).await;
        let before = insert(&writer, "before");
        wait_queued(&writer, 1).await;
        let w = writer.clone();
        let failing = tokio::spawn(async move {
            w.write(|conn| {
                conn.execute("INSERT INTO t (v) VALUES ('failing')", [])?;
                // Leaves the writer's `ROLLBACK TO op` nothing to roll back to, while the
                // group transaction lives on: the insert would be committed with it.
                conn.execute_batch("RELEASE op")?;
                Err(StoreError::Invalid("refused".into()).into())
            })
            .await
        });
        wait_queued(&writer, 2).await;
        let after = insert(&writer, "after");
        wait_queued(&writer, 3).await;
        drop(release);
        holder.await.expect("join");
        for (name, t) in [("before", before), ("failing", failing), ("after", after)] {
            let outcome = t.await.expect("join");
            assert!(
                matches!(outcome, Err(StoreError::Unavailable(_))),
                "the `{name}` write of the failed group was answered {outcome:?}"
            );
        }
        assert_eq!(
            rows(&writer).await,
            Vec::<String>::new(),
            "a write of a failed group was kept"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_alone_and_the_writer_lives_on() {
        let (_dir, writer) = writer_on_temp_file();
        let (release, holder) = hold_writer(&writer).await;
        let before = insert(&writer, "before");
        wait_queued(&writer, 1).await;
        let w = writer.clone();
        let panicking = tokio::spawn(async move {
            w.write(|conn| -> QResult<()> {
                conn.execute("INSERT INTO t (v) VALUES ('panicking')", [])?;
                panic!("a bug inside a write");
            })
            .await
        });
        wait_queued(&writer, 2).await;
        let after = insert(&writer, "after");
        wait_queued(&writer, 3).await;
        drop(release);
        holder.await.expect("join");
        before
            .await
            .expect("join")
            .expect("the write before commits");
        let outcome = panicking.await.expect("join");
        assert!(
            matches!(&outcome, Err(StoreError::Internal(m)) if m.contains("a bug inside a write")),
            "the panicking write was answered {outcome:?}"
        );
        after.await.expect("join").expect("the write after commits");
        assert_eq!(
            rows(&writer).await,
            vec!["after".to_string(), "before".to_string()]
        );
    }

    #[tokio::test]
    async fn a_stopped_writer_answers_unavailable_so_readiness_fails() {
        // `SqliteStore::ping` (behind `/readyz`) is a write: once the writer thread is gone
        // its queue is closed and every write, the ping included, is `Unavailable`.
        let (ops, rx) = mpsc::channel(1);
        drop(rx);
        let outcome = Writer { ops }.write(|_| Ok(())).await;
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
    }
}
