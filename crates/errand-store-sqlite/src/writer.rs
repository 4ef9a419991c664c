//! The writer thread: owns the only write connection and group-commits.
//!
//! Each write is a closure that runs inside its own savepoint, so one failing operation is
//! rolled back alone while the rest of the group commits. Callers are answered after
//! `COMMIT` returns, which with `synchronous=FULL` means the WAL is on disk.

use std::thread;

use errand_store::StoreError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::fault::{db_error, QResult};

/// Writes gathered into one transaction at most. Large enough that a burst of concurrent
/// enqueues shares one fsync; small enough that one group's latency stays in milliseconds.
const MAX_GROUP: usize = 1024;

/// Writes that may wait for the writer before callers are held back.
const QUEUE_DEPTH: usize = 16 * 1024;

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
            let outcome = f(conn).map_err(StoreError::from);
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
    for op in group.drain(..) {
        if let Err(e) = run_cached(conn, "SAVEPOINT op") {
            tracing::error!(error = %db_error(e), "SQLite writer could not open a savepoint");
            continue;
        }
        let (ok, finish) = op(conn);
        let end = if ok {
            run_cached(conn, "RELEASE op")
        } else {
            run_cached(conn, "ROLLBACK TO op").and_then(|_| run_cached(conn, "RELEASE op"))
        };
        if let Err(e) = end {
            tracing::error!(error = %e, "SQLite writer could not end a savepoint");
        }
        finishers.push(finish);
    }
    let commit = run_cached(conn, "COMMIT").map_err(db_error);
    if let Err(e) = &commit {
        tracing::error!(error = %e, "SQLite commit failed; the group is rolled back");
        let _ = conn.execute_batch("ROLLBACK");
    }
    for finish in finishers {
        finish(commit.clone());
    }
}

/// Runs a parameterless statement through the statement cache: the writer issues
/// `SAVEPOINT`/`RELEASE` twice per write, and parsing them each time showed in profiles.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
