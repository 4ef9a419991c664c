//! A transaction that costs two round trips fewer than `BEGIN … COMMIT` sent one statement
//! at a time: `BEGIN` travels with the first statement, and the events the transaction
//! appends are held until its end and travel with its `COMMIT` as one insert.
//!
//! The driver pipelines requests that are polled together, in the order they are first
//! polled, and PostgreSQL runs them in that order. What the pipelining changes is only
//! how long the database waits for the next statement; what the transaction does and sees
//! is the same. Events are only ever read after commit (by the event log's reader), so
//! appending them last changes nothing a statement in the transaction can see.
//!
//! A transaction whose future is dropped half-way keeps its connection out of the pool
//! until a `ROLLBACK` sent after whatever statement was running has ended it (so no later
//! caller inherits the transaction, and the pool's size still bounds the database's
//! connections); one whose `BEGIN`, `ROLLBACK` or `COMMIT` fails, or whose `ROLLBACK` does
//! not come back within [`ABANDONED_ROLLBACK_WAIT`], is closed instead, which rolls back
//! whatever it held.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::Object;

use errand_store::StoreError;

use crate::fault::{Fault, QResult};
use crate::transition::EventRows;

/// How long a transaction dropped half-way may take to roll back (its running statement
/// ends first) before its connection is closed instead.
const ABANDONED_ROLLBACK_WAIT: Duration = Duration::from_secs(60);

tokio::task_local! {
    static HELD: Arc<Mutex<EventRows>>;
}

/// Holds `rows` until the commit of the pipelined transaction running on this task, which
/// appends them with its `COMMIT`. Outside one, gives them back for the caller to append.
pub(crate) fn hold(rows: EventRows) -> Option<EventRows> {
    let mut rows = Some(rows);
    let _ = HELD.try_with(|held| {
        if let Ok(mut held) = held.lock() {
            if let Some(r) = rows.take() {
                held.extend(r);
            }
        }
    });
    rows
}

/// One pooled connection running one pipelined transaction.
pub(crate) struct PipelinedTx {
    client: Option<Object>,
    /// Whether the transaction may still be open on the connection.
    open: AtomicBool,
}

impl PipelinedTx {
    /// A transaction about to begin on `client`.
    pub(crate) fn new(client: Object) -> Self {
        Self {
            client: Some(client),
            open: AtomicBool::new(true),
        }
    }

    /// The connection the transaction's statements are sent on.
    pub(crate) fn client(&self) -> &Object {
        // Taken only in `drop`.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// Runs `body` between `BEGIN` and `COMMIT`: committed when it returns `Ok`, rolled
    /// back when it returns an error.
    pub(crate) async fn run<T>(&self, body: impl Future<Output = QResult<T>>) -> QResult<T> {
        let client = self.client();
        let held: Arc<Mutex<EventRows>> = Arc::default();
        let (began, out) = futures_util::join!(
            client.batch_execute("BEGIN"),
            HELD.scope(held.clone(), body)
        );
        // A BEGIN that failed leaves `open` set: the connection is not trusted again.
        began?;
        let finished = match out {
            Ok(out) => match take(&held) {
                Ok(events) => events.prepare(client).await.map(|insert| (out, insert)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (out, insert) = match finished {
            Ok(finished) => finished,
            Err(e) => return Err(self.roll_back(e).await),
        };
        let Some(insert) = insert else {
            self.commit().await?;
            return Ok(out);
        };
        // The insert is polled once on its own: that sends it (the statement is prepared),
        // so the COMMIT polled after it is sent after it. An insert that fails before it
        // is sent (its parameters refused by the driver) is rolled back, never committed.
        let mut appending = pin!(insert.execute(client));
        let appended = match futures_util::poll!(appending.as_mut()) {
            Poll::Ready(Err(e)) => return Err(self.roll_back(e).await),
            Poll::Ready(Ok(())) => {
                self.commit().await?;
                return Ok(out);
            }
            Poll::Pending => appending,
        };
        // When the insert fails the transaction is aborted, and PostgreSQL answers the
        // COMMIT after it with a rollback (not an error): the insert's error is the answer.
        let (appended, committed) = futures_util::join!(appended, self.commit());
        committed?;
        appended?;
        Ok(out)
    }

    /// Sends `COMMIT`; once it succeeds the transaction is over. A `COMMIT` that fails
    /// leaves it open, so its connection is not trusted again.
    async fn commit(&self) -> QResult<()> {
        self.client().batch_execute("COMMIT").await?;
        self.open.store(false, Ordering::Release);
        Ok(())
    }

    /// Rolls the transaction back after `cause`, and answers `cause`. A rollback that
    /// fails leaves the transaction open, and its connection is closed on drop.
    async fn roll_back(&self, cause: Fault) -> Fault {
        match self.client().batch_execute("ROLLBACK").await {
            Ok(()) => self.open.store(false, Ordering::Release),
            Err(e) => tracing::warn!(error = %e, "could not roll a transaction back"),
        }
        cause
    }
}

/// The events held for the commit.
fn take(held: &Mutex<EventRows>) -> QResult<EventRows> {
    held.lock()
        .map(|mut h| std::mem::take(&mut *h))
        .map_err(|_| Fault::Store(StoreError::Internal("the held events were lost".into())))
}

impl Drop for PipelinedTx {
    fn drop(&mut self) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        let Some(client) = self.client.take() else {
            return;
        };
        let abandoned = Abandoned(Some(client));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(abandoned.roll_back());
        }
        // Without a runtime, `abandoned` is dropped here and closes the connection.
    }
}

/// The connection of a transaction dropped half-way. Dropped before it is rolled back
/// (its task never ran, or the rollback failed), it is closed, out of the pool: the
/// database rolls the transaction back.
struct Abandoned(Option<Object>);

impl Abandoned {
    /// Rolls the transaction back once the statement running on it ends, and gives the
    /// connection back to the pool.
    async fn roll_back(mut self) {
        let Some(client) = self.0.as_ref() else {
            return;
        };
        let rolled_back =
            tokio::time::timeout(ABANDONED_ROLLBACK_WAIT, client.batch_execute("ROLLBACK")).await;
        if let Ok(Ok(())) = rolled_back {
            // Back to the pool, outside any transaction.
            drop(self.0.take());
        }
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}
