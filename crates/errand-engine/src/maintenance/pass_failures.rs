//! How a maintenance service reports failing passes: a store that stays unavailable (a
//! PostgreSQL outage, a SQLite store whose file is gone) fails every pass, ten a second for
//! the promoter, and one warning per pass would bury the one line that says why.

use std::time::{Duration, Instant};

use errand_store::StoreError;

/// How often a service that keeps failing says so again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// One service's run of failed passes.
pub(crate) struct PassFailures {
    service: &'static str,
    /// Failed passes since the last success, and when the last warning was logged.
    failing: Option<(u64, Instant)>,
}

impl PassFailures {
    /// No failure yet.
    pub(crate) fn new(service: &'static str) -> Self {
        Self {
            service,
            failing: None,
        }
    }

    /// Logs a failed pass: the first of a run at once, then a reminder with the count at
    /// most every [`REMIND_EVERY`].
    pub(crate) fn failed(&mut self, e: &StoreError) {
        let service = self.service;
        match &mut self.failing {
            None => {
                tracing::warn!(service, error = %e, "maintenance pass failed");
                self.failing = Some((1, Instant::now()));
            }
            Some((failed, said)) => {
                *failed += 1;
                if said.elapsed() >= REMIND_EVERY {
                    tracing::warn!(service, error = %e, failed = *failed, "maintenance passes still fail");
                    *said = Instant::now();
                }
            }
        }
    }

    /// Logs the end of a run of failures, if one was under way.
    pub(crate) fn succeeded(&mut self) {
        if let Some((failed, _)) = self.failing.take() {
            tracing::info!(
                service = self.service,
                failed,
                "maintenance passes work again"
            );
        }
    }
}
