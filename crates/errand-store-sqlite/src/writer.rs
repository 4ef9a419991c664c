//! The writer thread: owns the only write connection and group-commits.
//!
//! Each write is a closure that runs inside its own savepoint, so one failing operation is
//! rolled back alone while the rest of the group commits. Callers are answered after
//! `COMMIT` returns, which with `synchronous=FULL` means the WAL is on disk.
//!
//! Three failures must not turn into half-kept groups or a silently dead writer:
//! - After `SQLITE_FULL` or an I/O error SQLite may roll back the whole group transaction by
//!   itself. A `SAVEPOINT` opened after that would start a transaction of its own and its
//!   `RELEASE` would commit it, while the group's callers hear an error. What stops this is
//!   the end of the failed operation's savepoint: SQLite drops every savepoint with the
//!   transaction, so the `ROLLBACK TO op` (or, for an operation that swallowed the error,
//!   the `RELEASE op`) that ends it fails with "no such savepoint". Any failure to end a
//!   savepoint gives the whole group up: no further operation of it runs, what ran is
//!   rolled back, and every caller of the group hears `Unavailable`. The writer also checks
//!   [`Connection::is_autocommit`] after each operation, but only as a backstop: no known
//!   path reaches it, because a transaction SQLite rolled back always takes the savepoint
//!   with it (`a_real_sqlite_full_mid_group_keeps_nothing_of_the_group` shows that either
//!   check alone suffices).
//! - An operation that panics is caught, rolled back to its savepoint and answered with
//!   `Internal`; the writer thread and the rest of the group carry on.
//! - A panic anywhere else in a group (the writer's own code, the statement cache, an
//!   answer being sent) is caught around the whole group: the group's transaction is
//!   rolled back if still open and every caller not yet answered hears `Unavailable`; an
//!   answer that panics after `COMMIT` costs only its own caller. Should the thread end
//!   anyway (a panic payload whose own drop panics escapes the catch), [`Writer::is_alive`]
//!   turns false, which `/healthz` reports as 503, so a supervisor restarts a process whose
//!   store can no longer write.
//!
//! Before each `COMMIT` the writer also asks its [`FileWatch`] whether the store's files are
//! still the ones at their paths (one `stat` each). If the data directory was deleted or the
//! file replaced, the group is rolled back and refused: a commit would land in a file no
//! restart opens. From then on the store is broken and every write is refused before it is
//! queued.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use errand_core::panic_message;
use errand_store::StoreError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::fault::{db_error, QResult};
use crate::file_watch::FileWatch;
use crate::wake::{self, Wakeups};

/// Writes gathered into one transaction at most. Large enough that a burst of concurrent
/// enqueues shares one fsync; small enough that one group's latency stays in milliseconds.
const MAX_GROUP: usize = 1024;

/// Writes that may wait for the writer before callers are held back. Sixteen full groups:
/// the queue absorbs a burst from thousands of concurrent requests (the writer drains up to
/// [`MAX_GROUP`] per commit) while bounding what a stalled disk can pile up in memory. A
/// full queue only makes callers wait in `send`; nothing is refused.
const QUEUE_DEPTH: usize = 16 * MAX_GROUP;

/// What a group's answer says when the writer gave the whole group up; the full-disk test
/// looks for it to know that the case it is about really happened.
const GROUP_GIVEN_UP: &str = "the write was rolled back with its group";

type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type WriteOp = Box<dyn FnOnce(&Connection) -> (bool, Finish) + Send>;

/// Hands closures to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    ops: mpsc::Sender<WriteOp>,
    watch: Arc<FileWatch>,
}

impl Writer {
    /// Starts the writer thread on `conn`, committing only while `watch` finds the store's
    /// files where they were.
    /// After each commit it sends the queues the group's writes noted in [`wake`].
    pub(crate) fn start(
        conn: Connection,
        watch: Arc<FileWatch>,
        wakeups: Wakeups,
    ) -> Result<Self, StoreError> {
        let (ops, rx) = mpsc::channel(QUEUE_DEPTH);
        let thread_watch = watch.clone();
        thread::Builder::new()
            .name("errand-sqlite-writer".into())
            .spawn(move || run(conn, rx, &thread_watch, &wakeups))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { ops, watch })
    }

    /// Whether the writer thread still runs, asked without writing. Only the thread holds
    /// the queue's receiver, and it drops it however the thread ends (returning or
    /// unwinding), so a closed queue is a dead writer. Once it is gone no write can succeed
    /// again until the process restarts.
    pub(crate) fn is_alive(&self) -> bool {
        !self.ops.is_closed()
    }

    /// Runs `f` in the next group commit and answers once that commit is durable.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> QResult<T> + Send + 'static,
    {
        // A broken store refuses at once: no group, no `stat`, the reason in the answer.
        self.watch.refusal()?;
        let (tx, rx) = oneshot::channel();
        let op: WriteOp = Box::new(move |conn| {
            let outcome = match panic::catch_unwind(AssertUnwindSafe(|| f(conn))) {
                Ok(outcome) => outcome.map_err(StoreError::from),
                Err(payload) => {
                    let what = panic_message(payload.as_ref());
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

#[cfg(test)]
impl Writer {
    /// Ends the writer thread the one way its catches cannot stop: a panic payload whose
    /// own drop panics (the second panic starts where the first was handled). Returns once
    /// the op is queued; the thread dies when it runs it.
    pub(crate) async fn kill_for_test(&self) {
        struct PanicsOnDrop;
        impl Drop for PanicsOnDrop {
            fn drop(&mut self) {
                panic!("the panic payload panicked too");
            }
        }
        let op: WriteOp = Box::new(|_| panic::panic_any(PanicsOnDrop));
        let _ = self.ops.send(op).await;
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<WriteOp>, watch: &FileWatch, wakeups: &Wakeups) {
    let mut group: Vec<WriteOp> = Vec::with_capacity(MAX_GROUP);
    // Kept out here rather than inside `commit_group` so that after a panic the group is
    // rolled back before its callers are answered.
    let mut finishers: Vec<Finish> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            commit_group(&conn, watch, &mut group, &mut finishers, wakeups);
        }));
        if let Err(payload) = outcome {
            let what = panic_message(payload.as_ref());
            tracing::error!(
                panic = %what,
                ran = finishers.len(),
                "the SQLite writer panicked inside a group; the group is rolled back"
            );
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            // Dropping a finisher drops its reply channel: its caller hears `Unavailable`,
            // after the rollback above. Ops that had not run were dropped while unwinding
            // (nothing of them was written).
            group.clear();
            finishers.clear();
            wake::take();
            drop(payload);
        }
    }
    tracing::debug!("SQLite writer stopped");
}

fn commit_group(
    conn: &Connection,
    watch: &FileWatch,
    group: &mut Vec<WriteOp>,
    finishers: &mut Vec<Finish>,
    wakeups: &Wakeups,
) {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        // Dropping an op drops its reply channel: its caller hears `Unavailable`.
        tracing::error!(error = %db_error(e), "SQLite writer could not begin a transaction");
        group.clear();
        return;
    }
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
                // Either SQLite rolled the whole transaction back by itself (it took the
                // savepoint with it), or a failed write whose savepoint did not roll back
                // would be committed with the group while its caller hears an error. In
                // both cases no further op may run and nothing of the group may stay.
                broken = Some(format!("a savepoint could not be ended: {e}"));
            }
        }
        // Backstop only: a transaction SQLite rolled back takes the savepoint with it, so
        // the end of the savepoint above has already failed; see the module docs.
        if broken.is_none() && conn.is_autocommit() {
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
        Err(StoreError::Unavailable(format!("{GROUP_GIVEN_UP}: {why}")))
    } else if let Err(gone) = watch.check() {
        // Checked last, right before `COMMIT`, so that a file removed while the group ran
        // is seen too; every op has run (`ops` is empty).
        let _ = conn.execute_batch("ROLLBACK");
        Err(gone)
    } else {
        drop(ops);
        let commit = run_cached(conn, "COMMIT").map_err(db_error);
        if let Err(e) = &commit {
            tracing::error!(error = %e, "SQLite commit failed; the group is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
        }
        commit
    };
    if commit.is_ok() {
        wakeups.send_noted();
    } else {
        wake::take();
    }
    for finish in finishers.drain(..) {
        // Each answer on its own: once the group is committed, an answer that panics must
        // not cost the callers after it theirs (they would hear 503 for a kept write).
        let answer = commit.clone();
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || finish(answer))) {
            let what = panic_message(payload.as_ref());
            tracing::error!(panic = %what, "answering a SQLite write panicked");
        }
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
        let writer = start_watching(conn, &dir.path().join("w.sqlite3"));
        (dir, writer)
    }

    fn start_watching(conn: Connection, path: &std::path::Path) -> Writer {
        let watch = Arc::new(FileWatch::record(path).expect("watch"));
        Writer::start(conn, watch, Wakeups::new()).expect("writer")
    }

    /// Holds the writer inside one operation until the returned sender is dropped or sent
    /// to, so the writes queued meanwhile form the next group together.
    async fn hold_writer(writer: &Writer) -> (std_mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, held) = hold_writer_then(writer, |_| Ok(())).await;
        let holder = tokio::spawn(async move {
            held.await
                .expect("join")
                .expect("the holding write commits");
        });
        (release, holder)
    }

    /// Holds the writer inside one write until the returned sender is dropped or sent to;
    /// the write then runs `then` and answers through the returned task.
    async fn hold_writer_then(
        writer: &Writer,
        then: impl FnOnce(&Connection) -> QResult<()> + Send + 'static,
    ) -> (
        std_mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        let (release, held) = std_mpsc::channel::<()>();
        let (entered_tx, entered) = oneshot::channel();
        let w = writer.clone();
        let write = tokio::spawn(async move {
            w.write(move |conn| {
                let _ = entered_tx.send(());
                let _ = held.recv();
                then(conn)
            })
            .await
        });
        entered.await.expect("the writer runs the holding write");
        (release, write)
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

    /// Every write of a group that failed as a whole was answered `Unavailable`, none of
    /// them was kept, and the writer commits the next group.
    async fn assert_group_failed_whole(
        writer: &Writer,
        group: Vec<(&str, tokio::task::JoinHandle<Result<(), StoreError>>)>,
    ) {
        for (name, t) in group {
            let outcome = t.await.expect("join");
            assert!(
                matches!(outcome, Err(StoreError::Unavailable(_))),
                "the `{name}` write of the failed group was answered {outcome:?}"
            );
        }
        assert_eq!(
            rows(writer).await,
            Vec::<String>::new(),
            "a write of the failed group was kept"
        );
        insert(writer, "later")
            .await
            .expect("join")
            .expect("the writer commits the next group");
        assert_eq!(rows(writer).await, vec!["later".to_string()]);
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
        assert_group_failed_whole(
            &writer,
            vec![("before", before), ("failing", failing), ("after", after)],
        )
        .await;
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

    /// Queues a raw op, bypassing `write`'s own `catch_unwind`: it stands for the writer's
    /// own code between `BEGIN` and `COMMIT`, where a panic is not any write's fault.
    async fn queue_raw(writer: &Writer, op: WriteOp) {
        writer.ops.send(op).await.expect("the writer takes the op");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_real_sqlite_full_mid_group_keeps_nothing_of_the_group() {
        // A real `SQLITE_FULL`: the file may not grow past a few pages more than it has, so
        // the one large insert cannot fit while each small one would. SQLite then rolls back
        // the whole group transaction by itself (asserted below, so the test cannot drift
        // into a statement-only rollback without saying so). Without the writer's guard the
        // small writes after it would each autocommit in a `SAVEPOINT`/`RELEASE` pair of
        // their own while their callers hear 503.
        //
        // Either guard catches this alone: the failing `ROLLBACK TO op` (SQLite took the
        // savepoint with the transaction) and the `is_autocommit` backstop. With both
        // removed, "after-1" and "after-2" are stored and this test fails.
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("w.sqlite3")).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v TEXT NOT NULL);")
            .expect("schema");
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("page count");
        let max: i64 = conn
            .query_row(&format!("PRAGMA max_page_count = {}", pages + 8), [], |r| {
                r.get(0)
            })
            .expect("max_page_count");
        assert_eq!(max, pages + 8, "the page limit took");
        let writer = start_watching(conn, &dir.path().join("w.sqlite3"));

        let (release, holder) = hold_writer(&writer).await;
        let before = insert(&writer, "before");
        wait_queued(&writer, 1).await;
        let (seen_tx, seen) = std_mpsc::channel();
        let w = writer.clone();
        let large = tokio::spawn(async move {
            w.write(move |conn| {
                let big = "x".repeat(1_000_000);
                let outcome = conn.execute("INSERT INTO t (v) VALUES (?1)", [big]);
                let _ = seen_tx.send((
                    outcome.as_ref().err().and_then(|e| e.sqlite_error_code()),
                    conn.is_autocommit(),
                ));
                outcome?;
                Ok(())
            })
            .await
        });
        wait_queued(&writer, 2).await;
        let after_1 = insert(&writer, "after-1");
        wait_queued(&writer, 3).await;
        let after_2 = insert(&writer, "after-2");
        wait_queued(&writer, 4).await;
        drop(release);
        holder.await.expect("join");

        let (code, rolled_back) = seen.recv().expect("the large write ran");
        assert_eq!(
            code,
            Some(rusqlite::ErrorCode::DiskFull),
            "a real SQLITE_FULL"
        );
        assert!(
            rolled_back,
            "SQLite rolled the group transaction back by itself"
        );
        assert_group_failed_whole(
            &writer,
            vec![
                ("before", before),
                ("large", large),
                ("after-1", after_1),
                ("after-2", after_2),
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_a_group_outside_any_write_fails_the_group_and_the_writer_lives_on() {
        let (_dir, writer) = writer_on_temp_file();
        let (release, holder) = hold_writer(&writer).await;
        let before = insert(&writer, "before");
        wait_queued(&writer, 1).await;
        queue_raw(
            &writer,
            Box::new(|conn| {
                let _ = conn.execute("INSERT INTO t (v) VALUES ('raw')", []);
                panic!("a bug in the writer itself");
            }),
        )
        .await;
        let after = insert(&writer, "after");
        wait_queued(&writer, 3).await;
        drop(release);
        holder.await.expect("join");
        assert_group_failed_whole(&writer, vec![("before", before), ("after", after)]).await;
        assert!(writer.is_alive(), "the writer thread survived the panic");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_that_panics_after_commit_costs_only_its_own_caller() {
        let (_dir, writer) = writer_on_temp_file();
        let (release, holder) = hold_writer(&writer).await;
        let before = insert(&writer, "before");
        wait_queued(&writer, 1).await;
        queue_raw(
            &writer,
            Box::new(|conn| {
                let ok = conn.execute("INSERT INTO t (v) VALUES ('raw')", []).is_ok();
                let finish: Finish = Box::new(|_| panic!("a bug while answering"));
                (ok, finish)
            }),
        )
        .await;
        let after = insert(&writer, "after");
        wait_queued(&writer, 3).await;
        drop(release);
        holder.await.expect("join");
        before
            .await
            .expect("join")
            .expect("the write before is kept");
        after
            .await
            .expect("join")
            .expect("the write after the panicking answer is kept and told so");
        assert!(writer.is_alive(), "the writer thread survived the panic");
        assert_eq!(
            rows(&writer).await,
            vec!["after".to_string(), "before".to_string(), "raw".to_string()]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_thread_that_dies_is_no_longer_alive() {
        // Whatever ends the thread, liveness must see it without a write being tried.
        let (_dir, writer) = writer_on_temp_file();
        assert!(writer.is_alive());
        writer.kill_for_test().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.is_alive() {
            assert!(
                Instant::now() < deadline,
                "the dead writer still counts as alive"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let outcome = writer.write(|_| Ok(())).await;
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_stopped_writer_answers_unavailable_so_readiness_fails() {
        // `SqliteStore::ping` (behind `/readyz`) is a write: once the writer thread is gone
        // its queue is closed and every write, the ping included, is `Unavailable`.
        let (ops, rx) = mpsc::channel(1);
        drop(rx);
        let (_dir, alive) = writer_on_temp_file();
        let writer = Writer {
            ops,
            watch: alive.watch.clone(),
        };
        assert!(!writer.is_alive(), "a closed queue means a stopped writer");
        let outcome = writer.write(|_| Ok(())).await;
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_that_would_commit_into_a_removed_file_is_refused_and_kept_nowhere() {
        let (dir, writer) = writer_on_temp_file();
        insert(&writer, "before")
            .await
            .expect("join")
            .expect("kept while the file is there");
        // The original inodes live on under other names, as a data directory deleted
        // under a running process does in the process's open descriptors.
        let kept = tempfile::tempdir().expect("keep dir");
        for name in ["w.sqlite3", "w.sqlite3-wal"] {
            std::fs::hard_link(dir.path().join(name), kept.path().join(name)).expect("link");
        }
        let (release, during) = hold_writer_then(&writer, |conn| {
            conn.execute("INSERT INTO t (v) VALUES ('during')", [])?;
            Ok(())
        })
        .await;
        // Removed while the group of `during` is open: the check before `COMMIT` must see
        // it.
        for name in ["w.sqlite3", "w.sqlite3-wal", "w.sqlite3-shm"] {
            std::fs::remove_file(dir.path().join(name)).expect("remove");
        }
        drop(release);
        let outcome = during.await.expect("join");
        assert!(
            matches!(&outcome, Err(StoreError::Unavailable(m)) if m.contains("is gone")),
            "{outcome:?}"
        );
        let later = insert(&writer, "later").await.expect("join");
        assert!(
            matches!(&later, Err(StoreError::Unavailable(m)) if m.contains("is gone")),
            "a broken store refuses every later write: {later:?}"
        );
        drop(writer);
        let original = Connection::open(kept.path().join("w.sqlite3")).expect("open original");
        let rows: Vec<String> = original
            .prepare("SELECT v FROM t ORDER BY v")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(rows, vec!["before".to_string()]);
    }
}
