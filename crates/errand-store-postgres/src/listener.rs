//! The LISTEN connection: turns `pg_notify` wake-ups from any node into a broadcast of
//! queue names in this process. It reconnects with backoff when the connection drops;
//! wake-ups missed meanwhile are covered by waiting claims re-checking the store.

use std::time::Duration;

use errand_core::QueueName;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Config};

use crate::tls::MakeRustls;

/// First wait after a lost connection; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts: short enough that wake-ups resume soon
/// after the database returns.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The channel a schema's trigger notifies on.
pub(crate) fn channel(schema: &str) -> String {
    format!("{schema}.errand_ready")
}

/// Runs until `tx` has no receivers left and the connection drops.
pub(crate) async fn run(
    config: Config,
    tls: MakeRustls,
    schema: String,
    me: String,
    tx: broadcast::Sender<QueueName>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match listen_once(&config, &tls, &schema, &me, &tx).await {
            Ok(()) => backoff = FIRST_BACKOFF,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "LISTEN connection lost");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn listen_once(
    config: &Config,
    tls: &MakeRustls,
    schema: &str,
    me: &str,
    tx: &broadcast::Sender<QueueName>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let (note_tx, mut note_rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if note_tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN \"{}\"", channel(schema)))
        .await?;
    tracing::debug!(schema, "listening for wake-ups");
    while let Some(payload) = note_rx.recv().await {
        let Some((sender, queue)) = payload.split_once(':') else {
            continue;
        };
        if sender == me {
            continue;
        }
        if let Ok(q) = QueueName::parse(queue) {
            // No receiver is fine: nobody waits right now.
            let _ = tx.send(q);
        }
    }
    drop(client);
    match driver.await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}
