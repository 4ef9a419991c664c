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
        self.failed_at(e, Instant::now());
    }

    /// [`PassFailures::failed`] at `now`; returns whether it logged.
    fn failed_at(&mut self, e: &StoreError, now: Instant) -> bool {
        let service = self.service;
        match &mut self.failing {
            None => {
                tracing::warn!(service, error = %e, "maintenance pass failed");
                self.failing = Some((1, now));
                true
            }
            Some((failed, said)) => {
                *failed += 1;
                if now.saturating_duration_since(*said) < REMIND_EVERY {
                    return false;
                }
                tracing::warn!(service, error = %e, failed = *failed, "maintenance passes still fail");
                *said = now;
                true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failures_logs_once_then_a_reminder_a_minute() {
        let e = StoreError::Unavailable("the store file is gone".into());
        let start = Instant::now();
        let mut f = PassFailures::new("job_promoter");
        assert!(f.failed_at(&e, start), "the first failure is logged");
        let every_100_ms = (1..600).map(|i| start + Duration::from_millis(100 * i));
        let logged = every_100_ms.filter(|&t| f.failed_at(&e, t)).count();
        assert_eq!(
            logged, 0,
            "a minute of failing passes at 100 ms logs nothing more"
        );
        assert!(
            f.failed_at(&e, start + REMIND_EVERY),
            "a reminder after a minute"
        );
        assert!(!f.failed_at(&e, start + REMIND_EVERY + Duration::from_secs(1)));
        f.succeeded();
        assert!(
            f.failed_at(&e, start + REMIND_EVERY + Duration::from_secs(2)),
            "a new run of failures is logged at once"
        );
    }
}
