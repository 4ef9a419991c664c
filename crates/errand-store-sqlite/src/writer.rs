//! The writer: the only write connection, group-committed by a thread or, for a lone
//! write, by its caller.
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
//! A write that finds no other write in flight, while writes come one at a time (the
//! thread's last group held one), does not wait for the thread: its caller takes the
//! connection and commits it as a group of one on its own thread. That saves the two
//! thread hand-offs (to the writer and back) a lone client otherwise pays per write.
//! Writes that overlap go through the thread as before, so that concurrent callers share
//! one commit. Both ways run the same group code below, one at a time, behind one lock on
//! the connection. The writer thread takes that lock before it gathers its group, so writes
//! queued while a caller commits form the thread's next group, and lets it go before it
//! answers, so a caller it wakes may write alone at once. Commit order among writes in
//! flight together is not promised either way (a caller that stops waiting no longer
//! counts as in flight, and a lone write may then commit before its queued write).
//!
//! The cost: a lone write holds the runtime thread under its caller for the whole write
//! and its commit: the `fsync`, and now and then SQLite's automatic checkpoint, which runs
//! in the commit that fills the log past its threshold. So a caller writes alone only on a
//! runtime with another thread to serve meanwhile, and only when the file's write lock is
//! free at once: a lock another process holds (`errand import`, a backup, the `sqlite3`
//! shell) is waited for by the writer thread, never by a runtime thread.
//!
//! Before each `COMMIT` the writer also asks its [`FileWatch`] whether the store's files are
//! still the ones at their paths (one `stat` each). If the data directory was deleted or the
//! file replaced, the group is rolled back and refused: a commit would land in a file no
//! restart opens. From then on the store is broken and every write is refused before it is
//! queued.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

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

/// Hands closures to the writer thread, or runs a lone one on its caller's thread.
#[derive(Clone)]
pub(crate) struct Writer {
    ops: mpsc::Sender<WriteOp>,
    shared: Arc<Shared>,
}

/// What the writer thread and callers writing alone share.
struct Shared {
    /// The only write connection: held by whoever runs a group, the thread or a lone
    /// caller.
    conn: Mutex<Connection>,
    /// Writes made and not yet answered; a write that finds itself alone here may commit
    /// on its own thread.
    in_flight: AtomicUsize,
    /// How many writes the last group of the thread held: a caller writes alone only while
    /// writes come one at a time. Under load the thread's groups are large, and a caller
    /// that found itself alone for a moment between two of them would take a commit of its
    /// own.
    last_group: AtomicUsize,
    /// How long the connection waits for another process's lock: the thread waits so, a
    /// lone caller not at all (it hands its write to the thread instead).
    busy_timeout: Duration,
    watch: Arc<FileWatch>,
    wakeups: Wakeups,
}

/// Counts a write as in flight until it is answered, whichever way it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    /// Counts one more write; `alone` says whether it was the only one.
    fn enter(count: &'a AtomicUsize) -> (Self, bool) {
        let before = count.fetch_add(1, Ordering::AcqRel);
        (Self(count), before == 0)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// The connection inside a transaction begun for a caller that may write alone: no
    /// other write in flight (`alone`), writes coming one at a time, nobody holding the
    /// connection, a runtime with another thread to serve meanwhile, and the file's write
    /// lock free at once. Otherwise `None`, and the write goes to the thread. A lock held
    /// by another process (`errand import`, a backup, the `sqlite3` shell) is waited for
    /// by the thread, never by a runtime thread.
    fn lone_transaction(&self, alone: bool) -> Option<MutexGuard<'_, Connection>> {
        if !alone || self.last_group.load(Ordering::Relaxed) > 1 || !runtime_has_another_thread() {
            return None;
        }
        let conn = self.conn.try_lock().ok()?;
        conn.busy_timeout(Duration::ZERO).ok()?;
        let begun = run_cached(&conn, "BEGIN IMMEDIATE").is_ok();
        // Put back before anything else can fail: the thread waits for locks as before.
        let restored = conn.busy_timeout(self.busy_timeout).is_ok();
        if begun && !restored {
            let _ = conn.execute_batch("ROLLBACK");
        }
        (begun && restored).then_some(conn)
    }

    /// Commits `op` as a group of one on this thread when [`Shared::lone_transaction`]
    /// allows it; else hands it back, for the thread.
    fn commit_alone(&self, op: WriteOp, alone: bool) -> Option<WriteOp> {
        match self.lone_transaction(alone) {
            Some(conn) => {
                run_begun_group(conn, self, &mut vec![op], &mut Vec::new());
                None
            }
            None => Some(op),
        }
    }
}

/// Whether the caller runs on a runtime with more than one thread, so that one of them
/// committing a lone write leaves another serving. On a runtime of one thread every write
/// goes to the writer thread.
fn runtime_has_another_thread() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| {
        h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            && h.metrics().num_workers() > 1
    })
}

impl Writer {
    /// Starts the writer thread on `conn`, committing only while `watch` finds the store's
    /// files where they were.
    /// After each commit it sends the queues the group's writes noted in [`wake`].
    /// `busy_timeout` is the one `conn` was set up with.
    pub(crate) fn start(
        conn: Connection,
        busy_timeout: Duration,
        watch: Arc<FileWatch>,
        wakeups: Wakeups,
    ) -> Result<Self, StoreError> {
        let (ops, rx) = mpsc::channel(QUEUE_DEPTH);
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            in_flight: AtomicUsize::new(0),
            last_group: AtomicUsize::new(0),
            busy_timeout,
            watch,
            wakeups,
        });
        let thread_shared = shared.clone();
        thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || run(&thread_shared, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { ops, shared })
    }

    /// Whether the writer thread still runs, asked without writing. Only the thread holds
    /// the queue's receiver, and it drops it however the thread ends (returning or
    /// unwinding), so a closed queue is a dead writer. Once it is gone no write can succeed
    /// again until the process restarts.
    /// A connection whose lock a panic left poisoned is as dead: the thread gives up on
    /// it at its next group.
    pub(crate) fn is_alive(&self) -> bool {
        !self.ops.is_closed() && !self.shared.conn.is_poisoned()
    }

    /// Runs `f` in a group commit and answers once that commit is durable: as a group of
    /// one on this thread when [`Shared::commit_alone`] may, else in the writer thread's
    /// next group.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> QResult<T> + Send + 'static,
    {
        // A broken store refuses at once: no group, no `stat`, the reason in the answer.
        let shared = &*self.shared;
        shared.watch.refusal()?;
        if !self.is_alive() {
            return Err(stopped());
        }
        let (in_flight, alone) = InFlight::enter(&shared.in_flight);
        let (op, rx) = Self::op(f);
        if let Some(op) = shared.commit_alone(op, alone) {
            self.queue(op).await?;
        }
        let answer = Self::answer(rx).await;
        drop(in_flight);
        answer
    }

    /// Like [`Writer::write`], but always through the writer thread's queue, so that tests
    /// can hold the thread inside a group and queue writes behind it.
    #[cfg(test)]
    async fn write_queued<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> QResult<T> + Send + 'static,
    {
        self.shared.watch.refusal()?;
        let (op, rx) = Self::op(f);
        self.queue(op).await?;
        Self::answer(rx).await
    }

    /// Wraps `f` as an op of a group, with the receiver its answer comes to.
    fn op<T, F>(f: F) -> (WriteOp, oneshot::Receiver<Result<T, StoreError>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> QResult<T> + Send + 'static,
    {
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
        (op, rx)
    }

    /// Hands `op` to the writer thread.
    async fn queue(&self, op: WriteOp) -> Result<(), StoreError> {
        self.ops.send(op).await.map_err(|_| stopped())
    }

    /// The answer of an op's group.
    async fn answer<T>(rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        // A dropped reply: the group this write belonged to was abandoned before it ran
        // (its transaction could not begin or was rolled back), or the writer stopped.
        rx.await.map_err(|_| {
            StoreError::Unavailable("the SQLite writer could not run this write".into())
        })?
    }
}

/// What a write hears once the writer thread is gone: its caller's thread does not write
/// alone for a store that can no longer take the writes that overlap.
fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".into())
}

/// The writer thread's name; a test tells by it which thread committed a write.
const WRITER_THREAD: &str = "errand-sqlite-writer";

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

fn run(shared: &Shared, mut rx: mpsc::Receiver<WriteOp>) {
    let mut group: Vec<WriteOp> = Vec::with_capacity(MAX_GROUP);
    let mut finishers: Vec<Finish> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        // The lock first, the rest of the group after it: writes queued while a lone caller
        // commits join this group.
        let Ok(conn) = shared.conn.lock() else {
            // A caller's thread panicked past every catch while it held the connection.
            // Returning drops the queue, so liveness and every later write see the end.
            tracing::error!("the SQLite write connection was left poisoned; the writer stops");
            return;
        };
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        shared.last_group.store(group.len(), Ordering::Relaxed);
        run_group(conn, shared, &mut group, &mut finishers);
    }
    tracing::debug!("SQLite writer stopped");
}

/// Begins a transaction and commits `group` in it (see [`run_begun_group`]). A transaction
/// that cannot begin drops the group: each caller hears `Unavailable`.
fn run_group(
    conn: MutexGuard<'_, Connection>,
    shared: &Shared,
    group: &mut Vec<WriteOp>,
    finishers: &mut Vec<Finish>,
) {
    if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
        tracing::error!(error = %db_error(e), "SQLite writer could not begin a transaction");
        group.clear();
        return;
    }
    run_begun_group(conn, shared, group, finishers);
}

/// Commits `group` in the transaction `conn` has begun, catching a panic anywhere in it:
/// then the group's transaction is rolled back and every caller not yet answered hears
/// `Unavailable`. `finishers` is kept by the caller rather than inside [`commit_group`]
/// so that after a panic the group is rolled back before its callers are answered.
fn run_begun_group(
    conn: MutexGuard<'_, Connection>,
    shared: &Shared,
    group: &mut Vec<WriteOp>,
    finishers: &mut Vec<Finish>,
) {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        commit_group(&conn, shared, group, finishers)
    }));
    match outcome {
        Ok(commit) => {
            // The connection is let go before the answers: a caller woken by one may write
            // alone at once.
            drop(conn);
            answer_all(finishers, &commit);
        }
        Err(payload) => given_up(&conn, group, finishers, payload),
    }
}

/// After a panic inside a group: rolls it back, then drops what is left of it.
fn given_up(
    conn: &Connection,
    group: &mut Vec<WriteOp>,
    finishers: &mut Vec<Finish>,
    payload: Box<dyn std::any::Any + Send>,
) {
    let what = panic_message(payload.as_ref());
    tracing::error!(
        panic = %what,
        ran = finishers.len(),
        "the SQLite writer panicked inside a group; the group is rolled back"
    );
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    // Dropping a finisher drops its reply channel: its caller hears `Unavailable`, after
    // the rollback above. Ops that had not run were dropped while unwinding (nothing of
    // them was written).
    group.clear();
    finishers.clear();
    wake::take();
    drop(payload);
}

/// Runs each op of `group` in its savepoint inside the begun transaction, then commits.
fn commit_group(
    conn: &Connection,
    shared: &Shared,
    group: &mut Vec<WriteOp>,
    finishers: &mut Vec<Finish>,
) -> Result<(), StoreError> {
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
    } else if let Err(gone) = shared.watch.check() {
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
        shared.wakeups.send_noted();
    } else {
        wake::take();
    }
    commit
}

/// Tells each caller of a group how its commit ended.
fn answer_all(finishers: &mut Vec<Finish>, commit: &Result<(), StoreError>) {
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
        writer_waiting_for_locks(Duration::from_secs(5))
    }

    /// A writer on a new file whose connection waits `busy` for another's lock.
    fn writer_waiting_for_locks(busy: Duration) -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("w.sqlite3")).expect("open");
        conn.busy_timeout(busy).expect("busy timeout");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v TEXT NOT NULL);")
            .expect("schema");
        let watch = Arc::new(FileWatch::record(&dir.path().join("w.sqlite3")).expect("watch"));
        let writer = Writer::start(conn, busy, watch, Wakeups::new()).expect("writer");
        (dir, writer)
    }

    fn start_watching(conn: Connection, path: &std::path::Path) -> Writer {
        let watch = Arc::new(FileWatch::record(path).expect("watch"));
        Writer::start(conn, Duration::from_secs(5), watch, Wakeups::new()).expect("writer")
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
            w.write_queued(move |conn| {
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

    /// The name of the thread a write runs on, inserting `v` on the way.
    async fn insert_telling_thread(writer: &Writer, v: &'static str) -> Option<String> {
        writer
            .write(move |conn| {
                conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                Ok(thread::current().name().map(str::to_string))
            })
            .await
            .expect("the write commits")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_commits_on_its_callers_thread_and_an_overlapping_one_on_the_writer() {
        let (_dir, writer) = writer_on_temp_file();
        let lone = insert_telling_thread(&writer, "lone").await;
        assert_ne!(
            lone.as_deref(),
            Some(WRITER_THREAD),
            "a write with no other in flight waited for the writer thread"
        );

        // A lone write held inside its commit, on a runtime thread of its own; a write made
        // meanwhile overlaps it and must wait for the writer thread's group.
        let (release, held) = std_mpsc::channel::<()>();
        let (entered_tx, entered) = oneshot::channel();
        let w = writer.clone();
        let holder = tokio::spawn(async move {
            w.write(move |conn| {
                conn.execute("INSERT INTO t (v) VALUES ('held')", [])?;
                let _ = entered_tx.send(thread::current().name().map(str::to_string));
                let _ = held.recv();
                Ok(())
            })
            .await
        });
        let held_on = entered.await.expect("the held write runs");
        assert_ne!(held_on.as_deref(), Some(WRITER_THREAD));
        let w = writer.clone();
        let overlapping = tokio::spawn(async move { insert_telling_thread(&w, "overlap").await });
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.shared.in_flight.load(Ordering::Acquire) < 2 {
            assert!(
                Instant::now() < deadline,
                "the overlapping write never started"
            );
            tokio::task::yield_now().await;
        }
        drop(release);
        holder.await.expect("join").expect("the held write commits");
        assert_eq!(
            overlapping.await.expect("join").as_deref(),
            Some(WRITER_THREAD),
            "a write made while another was in flight did not go through the writer's group"
        );
        assert_eq!(
            rows(&writer).await,
            vec![
                "held".to_string(),
                "lone".to_string(),
                "overlap".to_string()
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_made_while_another_is_in_flight_goes_through_the_writer() {
        let (_dir, writer) = writer_on_temp_file();
        // Another write in flight that does not hold the connection, as one queued for the
        // thread or one whose answer is on its way is.
        writer.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let overlapping = insert_telling_thread(&writer, "overlap").await;
        writer.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        assert_eq!(
            overlapping.as_deref(),
            Some(WRITER_THREAD),
            "a write made while another was in flight committed alone"
        );
        assert_ne!(
            insert_telling_thread(&writer, "alone").await.as_deref(),
            Some(WRITER_THREAD)
        );
    }

    #[tokio::test]
    async fn on_a_runtime_of_one_thread_every_write_goes_through_the_writer() {
        // Committing on the only runtime thread would stop every other task for as long.
        let (_dir, writer) = writer_on_temp_file();
        assert_eq!(
            insert_telling_thread(&writer, "only").await.as_deref(),
            Some(WRITER_THREAD)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_hands_a_file_locked_by_another_process_to_the_writer() {
        // A busy timeout far longer than the first poll may take: a lone attempt that
        // waited for the lock would hold the poll that long.
        let busy = Duration::from_secs(30);
        let (dir, writer) = writer_waiting_for_locks(busy);
        let other = Connection::open(dir.path().join("w.sqlite3")).expect("open");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        let write = insert_telling_thread(&writer, "waited");
        tokio::pin!(write);
        // The lone attempt runs within the first poll: it must neither commit nor wait for
        // the lock there, but leave the waiting to the thread.
        let polled = Instant::now();
        let first = tokio::time::timeout(Duration::ZERO, &mut write).await;
        assert!(
            polled.elapsed() < busy / 3,
            "the first poll waited for the lock on the caller's thread"
        );
        assert!(first.is_err(), "the write ended while the file was locked");
        other.execute_batch("COMMIT").expect("let the lock go");
        assert_eq!(
            write.await.as_deref(),
            Some(WRITER_THREAD),
            "the write held up by another process's lock was not the thread's"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_group_of_several_a_lone_write_goes_through_the_writer_once() {
        let (_dir, writer) = writer_on_temp_file();
        let (release, holder) = hold_writer(&writer).await;
        let first = insert(&writer, "a");
        wait_queued(&writer, 1).await;
        let second = insert(&writer, "b");
        wait_queued(&writer, 2).await;
        drop(release);
        holder.await.expect("join");
        for t in [first, second] {
            t.await.expect("join").expect("the group of two commits");
        }
        // The last group held two writes: load may still be high, so the next write goes
        // through the writer even alone; once writes come one at a time again, they are
        // committed by their callers.
        assert_eq!(
            insert_telling_thread(&writer, "c").await.as_deref(),
            Some(WRITER_THREAD),
            "a lone write right after a group of several did not go through the writer"
        );
        assert_ne!(
            insert_telling_thread(&writer, "d").await.as_deref(),
            Some(WRITER_THREAD),
            "writes coming one at a time again still wait for the writer thread"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_that_fails_or_panics_is_rolled_back_alone() {
        let (_dir, writer) = writer_on_temp_file();
        let (ran_on, threads) = std_mpsc::channel();
        let tell = ran_on.clone();
        let failed = writer
            .write(move |conn| -> QResult<()> {
                let _ = tell.send(thread::current().name().map(str::to_string));
                conn.execute("INSERT INTO t (v) VALUES ('failed')", [])?;
                Err(StoreError::Invalid("refused".into()).into())
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Invalid(_))), "{failed:?}");
        let panicked = writer
            .write(move |conn| -> QResult<()> {
                let _ = ran_on.send(thread::current().name().map(str::to_string));
                conn.execute("INSERT INTO t (v) VALUES ('panicked')", [])?;
                panic!("a bug inside a lone write");
            })
            .await;
        let ran_on: Vec<_> = threads.try_iter().collect();
        assert_eq!(ran_on.len(), 2, "both writes ran");
        for on in ran_on {
            assert_ne!(on.as_deref(), Some(WRITER_THREAD), "not a lone write");
        }
        assert!(
            matches!(&panicked, Err(StoreError::Internal(m)) if m.contains("a bug inside a lone write")),
            "{panicked:?}"
        );
        assert!(
            writer.is_alive(),
            "a lone write's panic poisoned the writer"
        );
        insert_telling_thread(&writer, "kept").await;
        assert_eq!(rows(&writer).await, vec!["kept".to_string()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_into_a_removed_file_is_refused() {
        let (dir, writer) = writer_on_temp_file();
        for name in ["w.sqlite3", "w.sqlite3-wal", "w.sqlite3-shm"] {
            let _ = std::fs::remove_file(dir.path().join(name));
        }
        let (ran_on, thread) = std_mpsc::channel();
        let outcome = writer
            .write(move |conn| {
                let _ = ran_on.send(thread::current().name().map(str::to_string));
                conn.execute("INSERT INTO t (v) VALUES ('after')", [])?;
                Ok(())
            })
            .await;
        assert!(
            matches!(&outcome, Err(StoreError::Unavailable(m)) if m.contains("is gone")),
            "{outcome:?}"
        );
        assert_ne!(
            thread.try_recv().expect("the write ran").as_deref(),
            Some(WRITER_THREAD),
            "not a lone write"
        );
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_writer_answers_unavailable_so_readiness_fails() {
        // `SqliteStore::ping` (behind `/readyz`) is a write: once the writer thread is gone
        // its queue is closed and every write, the ping included, is `Unavailable`.
        let (ops, rx) = mpsc::channel(1);
        drop(rx);
        let (_dir, alive) = writer_on_temp_file();
        let writer = Writer {
            ops,
            ..alive.clone()
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
