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
//! A transaction that does not end cleanly (its future dropped half-way, or its `BEGIN`,
//! `ROLLBACK` or `COMMIT` failing) takes its connection out of the pool: closing the
//! connection rolls back whatever it held, and no later caller inherits it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_postgres::Object;

use errand_store::StoreError;

use crate::fault::{Fault, QResult};
use crate::transition::EventRows;

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
            Err(e) => {
                client.batch_execute("ROLLBACK").await?;
                self.open.store(false, Ordering::Release);
                return Err(e);
            }
        };
        // The insert is polled first, so it is sent before the COMMIT. When it fails the
        // transaction is aborted, and PostgreSQL answers the COMMIT after it with a
        // rollback (not an error): the insert's error is the answer.
        let (appended, committed) = match &insert {
            Some(insert) => {
                futures_util::join!(insert.execute(client), client.batch_execute("COMMIT"))
            }
            None => (Ok(()), client.batch_execute("COMMIT").await),
        };
        committed?;
        self.open.store(false, Ordering::Release);
        appended?;
        Ok(out)
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
        if self.open.load(Ordering::Acquire) {
            if let Some(client) = self.client.take() {
                // Out of the pool and closed: the database rolls the transaction back.
                drop(Object::take(client));
            }
        }
    }
}
