//! A few read-only connections, used from blocking threads so queries never stall the
//! async runtime and never wait for the writer (WAL readers see the last commit).

use std::sync::{Arc, Mutex};

use errand_store::StoreError;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::fault::QResult;

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
            let outcome = f(&conn).map_err(StoreError::from);
            if let Ok(mut idle) = idle.lock() {
                idle.push(conn);
            }
            outcome
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a read failed: {e}")))?
    }
}
