//! Settlements of many runs go to the host together: at a thousand short runs a second,
//! one store transaction (or one HTTP request) per run would be the bottleneck.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::host::{HostError, JobHost, RunSettlement};

/// The most settlements sent in one call.
const MAX_BATCH: usize = 512;
/// Tries of a batch the host could not take before its runs hear the error.
const TRIES: u32 = 5;

type Waiting = (RunSettlement, oneshot::Sender<Result<(), HostError>>);

/// Hands settlements to one task that sends whatever has gathered in one call.
#[derive(Clone)]
pub(crate) struct SettleBatcher {
    tx: mpsc::Sender<Waiting>,
}

impl SettleBatcher {
    /// Starts the sending task; it ends when every batcher clone is gone.
    pub(crate) fn start(host: Arc<dyn JobHost>) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(send_loop(host, rx));
        Self { tx }
    }

    /// Settles one attempt, waiting for the host's answer.
    pub(crate) async fn settle(&self, settlement: RunSettlement) -> Result<(), HostError> {
        let (answer, heard) = oneshot::channel();
        self.tx
            .send((settlement, answer))
            .await
            .map_err(|_| HostError::Unavailable("the runner is stopping".into()))?;
        heard
            .await
            .map_err(|_| HostError::Unavailable("the runner is stopping".into()))?
    }
}

async fn send_loop(host: Arc<dyn JobHost>, mut rx: mpsc::Receiver<Waiting>) {
    let mut batch: Vec<Waiting> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (settlements, answers): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            match host.settle(settlements.clone()).await {
                Err(HostError::Unavailable(why)) if tries < TRIES => {
                    tracing::warn!(%why, tries, "settling runs failed; trying again");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(tries))).await;
                }
                other => break other,
            }
        };
        match outcome {
            Ok(results) => {
                let mut results = results.into_iter();
                for answer in answers {
                    let r = results.next().unwrap_or_else(|| {
                        Err(HostError::Refused(
                            "the host answered fewer settlements".into(),
                        ))
                    });
                    let _ = answer.send(r);
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}
