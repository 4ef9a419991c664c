//! The LISTEN connection: turns `pg_notify` wake-ups from any node into a broadcast of
//! queue names in this process, and greets the other nodes ([`peers`]). It reconnects with
//! backoff when the connection drops; wake-ups missed meanwhile are covered by waiting
//! claims re-checking the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_core::QueueName;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Config};
use tokio_util::sync::CancellationToken;

use crate::goodbye::{until_goodbye, Connections};
use crate::peers::{self, Peers};
use crate::tls::MakeRustls;

/// First wait after a lost connection; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts: short enough that wake-ups resume soon
/// after the database returns.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a stop lets a connection being opened go on, so that it can say goodbye.
const CONNECT_GRACE: Duration = Duration::from_secs(1);

/// The channel a schema's trigger notifies on.
pub(crate) fn channel(schema: &str) -> String {
    format!("{schema}.errand_ready")
}

/// What one node's listener needs to know and tell.
pub(crate) struct Listening {
    /// The schema whose channel it listens on.
    pub(crate) schema: String,
    /// This store instance's name in payloads.
    pub(crate) me: String,
    /// Where queue names go.
    pub(crate) tx: broadcast::Sender<QueueName>,
    /// The other nodes heard.
    pub(crate) peers: Arc<Peers>,
    /// Cancelled on a clean stop: the listener hangs up and ends.
    pub(crate) stop: CancellationToken,
    /// Where its connection runs, so that a clean stop waits for its goodbye.
    pub(crate) connections: Connections,
}

/// Runs until stopped; reconnects whenever the connection drops.
pub(crate) async fn run(config: Config, tls: MakeRustls, listening: Listening) {
    let mut backoff = FIRST_BACKOFF;
    while !listening.stop.is_cancelled() {
        let ended = listen_once(&config, &tls, &listening).await;
        let listened = listening.peers.set_listening(false);
        if listening.stop.is_cancelled() {
            return;
        }
        // A connection that got as far as listening starts the waits over.
        if listened {
            backoff = FIRST_BACKOFF;
        }
        if let Err(e) = ended {
            // The driver's own words for a server's error are only "db error": the chain
            // carries the server's reason (a failover, an administrator's command).
            let error = crate::connect_error::chain(&e);
            tracing::warn!(%error, retry_in = ?backoff, "LISTEN connection lost");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = listening.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: until it drops, or until a stop, when it hangs up.
async fn listen_once(
    config: &Config,
    tls: &MakeRustls,
    listening: &Listening,
) -> Result<(), tokio_postgres::Error> {
    // A stop gives a connection being opened a moment to finish, so that it can say goodbye
    // rather than be dropped halfway through; one that takes longer (a database that does
    // not answer) is dropped.
    let connecting = config.connect(tls.clone());
    let stopped = async {
        listening.stop.cancelled().await;
        tokio::time::sleep(CONNECT_GRACE).await;
    };
    let (client, mut connection) = tokio::select! {
        connected = connecting => connected?,
        () = stopped => return Ok(()),
    };
    let (note_tx, note_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    let (hold, released) = tokio::sync::oneshot::channel::<()>();
    // Notifications go on to `listen_on` while it listens. Once the client is dropped the
    // connection sends `Terminate` and ends: a goodbye, not a dropped socket.
    listening.connections.spawn(async move {
        let driven = async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        // Nobody listening any more is fine: the connection goes on to its end.
                        let _ = note_tx.send(n.payload().to_string());
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        };
        let outcome = until_goodbye(driven, released).await.unwrap_or(Ok(()));
        let _ = ended_tx.send(outcome);
    });
    let outcome = tokio::select! {
        outcome = listen_on(&client, listening, note_rx) => outcome,
        () = listening.stop.cancelled() => Ok(()),
    };
    drop(client);
    drop(hold);
    let ended = ended.await.unwrap_or(Ok(()));
    match (outcome, ended) {
        // Both failed (a query under way when the server cut the connection): the
        // connection's own error carries the server's reason, the query's only "closed".
        (Err(query), Err(connection)) => Err(if connection.as_db_error().is_some() {
            connection
        } else {
            query
        }),
        (outcome, ended) => outcome.and(ended),
    }
}

/// Listens on `client` and hands on what `notes` brings, until the connection ends.
async fn listen_on(
    client: &tokio_postgres::Client,
    listening: &Listening,
    mut notes: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Result<(), tokio_postgres::Error> {
    let Listening {
        schema,
        me,
        tx,
        peers,
        ..
    } = listening;
    let channel = channel(schema);
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    tracing::debug!(schema, "listening for wake-ups");
    peers.set_listening(true);
    // A hello is a payload with no queue: `sender:`.
    let hello_payload = format!("{me}:");
    let hello = client.prepare("SELECT pg_notify($1, $2)").await?;
    let mut hellos = tokio::time::interval(peers::HELLO_EVERY);
    loop {
        let payload = tokio::select! {
            _ = hellos.tick() => {
                client.execute(&hello, &[&channel, &hello_payload]).await?;
                continue;
            }
            payload = notes.recv() => match payload {
                Some(payload) => payload,
                None => break,
            },
        };
        let Some((sender, queue)) = payload.split_once(':') else {
            continue;
        };
        if sender == me {
            continue;
        }
        if peers.heard(sender, Instant::now()) {
            // A node new here: greet it back now rather than at the next hello, so that
            // it sends this node wake-ups from its next write on.
            client.execute(&hello, &[&channel, &hello_payload]).await?;
        }
        if queue.is_empty() {
            continue;
        }
        if let Ok(q) = QueueName::parse(queue) {
            // No receiver is fine: nobody waits right now.
            let _ = tx.send(q);
        }
    }
    Ok(())
}
