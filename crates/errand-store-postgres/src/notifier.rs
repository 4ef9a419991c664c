//! Sends wake-ups to the other nodes, after commit and outside the writing transaction.
//!
//! A transaction that calls `NOTIFY` takes a database-wide lock at commit, which would
//! serialise every enqueue's commit (and its WAL flush) behind every other. So writes only
//! hand queue names to this task; it coalesces the names that arrive while its previous
//! notification ran (debouncing bursts into one statement) and sends them in one short
//! autocommit statement of its own. Each payload is `sender:queue`, so that a node can
//! ignore its own notifications: it has woken its waiters already, in process. A node that
//! has heard no other node lately ([`Peers`]) sends nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;

use crate::listener::channel;
use crate::peers::Peers;

/// Hands queue names to the notifier task.
#[derive(Clone)]
pub(crate) struct Notifier {
    tx: mpsc::UnboundedSender<String>,
    peers: Arc<Peers>,
}

impl Notifier {
    /// Starts the notifier task.
    pub(crate) fn start(
        pool: Pool,
        schema: &str,
        sender: &str,
        peers: Arc<Peers>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(pool, channel(schema), sender.to_string(), rx));
        (Self { tx, peers }, task)
    }

    /// Wakes claims waiting on `queue` on every other node, if any was heard lately.
    pub(crate) fn notify(&self, queue: &str) {
        if !self.peers.present(Instant::now()) {
            return;
        }
        // The task ends only with the store; a send after that has nobody to wake.
        let _ = self.tx.send(queue.to_string());
    }
}

async fn run(pool: Pool, channel: String, sender: String, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(first) = rx.recv().await {
        let mut queues = BTreeSet::from([first]);
        while let Ok(q) = rx.try_recv() {
            queues.insert(q);
        }
        let queues: Vec<String> = queues.into_iter().collect();
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_cached("SELECT pg_notify($1, $2 || ':' || q) FROM unnest($3::text[]) AS q")
                .await
                .map_err(|e| e.to_string())?;
            client
                .execute(&stmt, &[&channel, &sender, &queues])
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = sent.await {
            // Waiting claims on other nodes re-check the store on their own within a second.
            tracing::warn!(error = %e, "could not send wake-ups to other nodes");
        }
    }
}
