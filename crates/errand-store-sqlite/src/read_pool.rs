//! A few read-only connections, used from blocking threads so queries never stall the
//! async runtime and never wait for the writer (WAL readers see the last commit).

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use errand_store::StoreError;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::fault::QResult;
use errand_core::panic_message;

/// Hands out read connections.
#[derive(Clone)]
pub(crate) struct ReadPool {
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    /// Wraps opened read connections.
    pub(crate) fn new(conns: Vec<Connection>) -> Self {
        let permits = Arc::new(Semaphore::new(conns.len()));
        Self {
            idle: Arc::new(Mutex::new(conns)),
            permits,
        }
    }

    /// Runs `f` on a read connection in a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> QResult<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the read pool is closed".into()))?;
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = idle
                .lock()
                .map_err(|_| StoreError::Unavailable("the read pool is poisoned".into()))?
                .pop()
                .ok_or_else(|| StoreError::Unavailable("no read connection is free".into()))?;
            let outcome = match panic::catch_unwind(AssertUnwindSafe(|| f(&conn))) {
                Ok(outcome) => outcome.map_err(StoreError::from),
                // A bug in the read, which asking again would hit again: `Internal`, as a
                // panicking write is. The connection stays in the pool (unwinding finalised
                // the read's statements); without it every later read would find none free.
                Err(payload) => {
                    let what = panic_message(payload.as_ref());
                    tracing::error!(panic = %what, "a SQLite read panicked");
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    Err(StoreError::Internal(format!("a read panicked: {what}")))
                }
            };
            if let Ok(mut idle) = idle.lock() {
                idle.push(conn);
            }
            outcome
        })
        .await
        // Panics are caught above: only a runtime shutting down cancels the task.
        .map_err(|e| StoreError::Unavailable(format!("a read was cancelled: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use errand_store::StoreError;
    use rusqlite::Connection;

    use super::ReadPool;

    #[tokio::test]
    async fn a_panicking_read_is_internal_and_keeps_its_connection() {
        let pool = ReadPool::new(vec![Connection::open_in_memory().expect("open")]);
        let outcome = pool
            .read(|_| -> crate::fault::QResult<()> { panic!("a bug in a read") })
            .await;
        assert!(
            matches!(&outcome, Err(StoreError::Internal(m)) if m.contains("a bug in a read")),
            "{outcome:?}"
        );
        // The pool's only connection is back: the next read runs.
        let n = pool
            .read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await;
        assert_eq!(n, Ok(1));
    }
}
