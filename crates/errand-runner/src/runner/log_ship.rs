//! Lines a run prints, gathered and shipped in batches: never one write per line.

use std::sync::Arc;
use std::time::Duration;

use errand_core::secrets::Redactor;
use errand_core::{JobId, LeaseToken, NewLogLine};

use crate::host::{HostError, JobHost};

/// Tries of one batch the host could not take before its lines are given up (the run
/// goes on: losing log lines must not fail the job).
const TRIES: u32 = 3;

/// The lines of one attempt not yet shipped.
pub(crate) struct LogShipper {
    host: Arc<dyn JobHost>,
    id: JobId,
    attempt: u32,
    lease_token: LeaseToken,
    pending: Vec<NewLogLine>,
    redactor: Redactor,
}

impl LogShipper {
    pub(crate) fn new(
        host: Arc<dyn JobHost>,
        id: JobId,
        attempt: u32,
        lease_token: LeaseToken,
        redactor: Redactor,
    ) -> Self {
        Self {
            host,
            id,
            attempt,
            lease_token,
            pending: Vec::new(),
            redactor,
        }
    }

    /// Queues a line, with every secret value of the run replaced by `***`: the one place
    /// a run's lines pass before they are stored.
    pub(crate) fn push(&mut self, mut line: NewLogLine) {
        if !self.redactor.is_empty() {
            line.line = self.redactor.redact(&line.line);
        }
        self.pending.push(line);
    }

    /// `text` with every secret value of the run replaced by `***` (for a line kept
    /// elsewhere too, such as the last stderr line a failure quotes).
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.redactor.is_empty() {
            text.to_string()
        } else {
            self.redactor.redact(text)
        }
    }

    /// Whether `value` holds a secret value of the run anywhere (keys included).
    pub(crate) fn finds_in_json(&self, value: &serde_json::Value) -> bool {
        self.redactor.finds_in_json(value)
    }

    /// `value` with every secret value of the run replaced by `***` in each of its
    /// string values (a result the API shows).
    pub(crate) fn redact_json(&self, value: &mut serde_json::Value) {
        self.redactor.redact_json(value);
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Ships what is pending. `LeaseLost` and `NotFound` are passed on (the run must
    /// stop); other failures are retried, then the lines are given up (and logged).
    pub(crate) async fn flush(&mut self) -> Result<(), HostError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.pending);
        let count = lines.len() as u64;
        let mut tries = 0;
        loop {
            tries += 1;
            match self
                .host
                .append_logs(self.id, self.attempt, self.lease_token, lines.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(e @ (HostError::LeaseLost | HostError::NotFound)) => return Err(e),
                Err(e) if tries >= TRIES => {
                    tracing::warn!(job = %self.id, error = %e, count, "log lines given up");
                    return Ok(());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await,
            }
        }
    }
}
