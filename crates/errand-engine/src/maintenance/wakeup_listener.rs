//! Forwards wake-ups from other nodes (the store's notifications) to claims waiting here.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::Engine;

pub(crate) async fn run(engine: Arc<Engine>, token: CancellationToken) {
    let Some(mut wakeups) = engine.store().wakeups() else {
        return;
    };
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            got = wakeups.recv() => match got {
                Ok(queue) => engine.wake(&queue),
                // Missed some: wake every waiting claim; each re-checks its queue.
                Err(RecvError::Lagged(_)) => engine.wake_all(),
                Err(RecvError::Closed) => return,
            },
        }
    }
}
