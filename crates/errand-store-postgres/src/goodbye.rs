//! Connections that say goodbye. deadpool aborts a pooled connection's task when it lets the
//! connection go, and a process that ends drops its sockets: either way PostgreSQL reads a
//! broken connection, and over TLS it logs "could not receive data from client: Connection
//! reset by peer" for each, on every restart of every node. Here each connection runs on a
//! task deadpool does not hold: once its client is dropped, tokio-postgres sends
//! `Terminate` and shuts the stream down (TLS's `close_notify` included), and the task
//! ends. [`Connections::close`] waits for them all.

use std::time::Duration;

use deadpool_postgres::Connect;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::tls::MakeRustls;

/// How long a connection whose client is gone may take to say goodbye before its task
/// drops it anyway (a peer that stopped answering must not keep a task for ever).
const GOODBYE_WITHIN: Duration = Duration::from_secs(2);

/// The connection tasks of one store, its pool's and its listener's.
#[derive(Clone, Default)]
pub(crate) struct Connections {
    tracker: TaskTracker,
}

impl Connections {
    /// Runs a connection's driver (or a task that owns connections) to its end as one of
    /// this store's connections.
    pub(crate) fn spawn<F>(&self, driver: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(driver)
    }

    /// Waits at most `within` for every connection to end; their clients must be gone (or
    /// going) for them to. False when some had not ended by then.
    pub(crate) async fn close(&self, within: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Drives `connection` to its end. Once `released` fires (or its sender is dropped), its
/// client is going and it gets [`GOODBYE_WITHIN`] to say goodbye and end; `None` when it
/// did not, and was dropped.
pub(crate) async fn until_goodbye<F: std::future::Future>(
    connection: F,
    released: oneshot::Receiver<()>,
) -> Option<F::Output> {
    tokio::pin!(connection);
    tokio::select! {
        ended = &mut connection => Some(ended),
        _ = released => match tokio::time::timeout(GOODBYE_WITHIN, &mut connection).await {
            Ok(ended) => Some(ended),
            Err(_) => {
                tracing::debug!(within = ?GOODBYE_WITHIN, "a PostgreSQL connection did not end after its goodbye: dropped");
                None
            }
        },
    }
}

/// deadpool's way to open a connection, with the connection on a [`Connections`] task.
pub(crate) struct GoodbyeConnect {
    pub(crate) tls: MakeRustls,
    pub(crate) connections: Connections,
}

impl Connect for GoodbyeConnect {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let tls = self.tls.clone();
        let config = config.clone();
        let connections = self.connections.clone();
        Box::pin(async move {
            let (client, connection) = config.connect(tls).await?;
            let (hold, released) = oneshot::channel::<()>();
            connections.spawn(async move {
                if let Some(Err(e)) = until_goodbye(connection, released).await {
                    tracing::warn!(error = %e, "PostgreSQL connection failed");
                }
            });
            // What deadpool holds, and aborts when it lets the connection go: that drops
            // `hold`, which tells the connection's task its client is going.
            let handle = tokio::spawn(async move {
                let _hold = hold;
                std::future::pending::<()>().await;
            });
            Ok((client, handle))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_released_connection_gets_its_time_to_end_and_no_more() {
        // Ends one second after its release: within the time, so its outcome comes back.
        let (hold, released) = oneshot::channel::<()>();
        let (let_go_tx, let_go) = oneshot::channel::<()>();
        let ending = async move {
            let _ = let_go.await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            "said goodbye"
        };
        let waiting = tokio::spawn(until_goodbye(ending, released));
        drop(hold);
        let _ = let_go_tx.send(());
        assert_eq!(waiting.await.ok().flatten(), Some("said goodbye"));

        // Never ends: dropped once its time is up, not waited for for ever.
        let (hold, released) = oneshot::channel::<()>();
        let started = tokio::time::Instant::now();
        let waiting = tokio::spawn(until_goodbye(std::future::pending::<()>(), released));
        drop(hold);
        assert_eq!(waiting.await.ok().flatten(), None);
        assert_eq!(started.elapsed(), GOODBYE_WITHIN);
    }
}
