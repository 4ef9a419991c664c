//! How long a failed job waits before its next attempt.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter: attempt `n` waits about `base * 2^(n-1)`, capped at `max`,
/// spread by ±`jitter` so that jobs that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the first failure.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Fraction of the wait drawn at random, 0.0 to 1.0.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// One second doubling to one hour: 25 attempts then span about a day, long enough to
    /// outlast most outages of what a job calls.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The wait before the attempt after `failed_attempt` (1-based).
    pub fn delay(&self, failed_attempt: u32) -> Duration {
        let exp = failed_attempt.saturating_sub(1).min(40);
        let raw = self.base.as_secs_f64() * 2f64.powi(exp as i32);
        let capped = raw.min(self.max.as_secs_f64());
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64((capped * (1.0 + spread)).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_and_caps() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1), Duration::from_secs(1));
        assert_eq!(p.delay(2), Duration::from_secs(2));
        assert_eq!(p.delay(5), Duration::from_secs(16));
        assert_eq!(p.delay(30), Duration::from_secs(3600));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = RetryPolicy::default();
        for _ in 0..1000 {
            let d = p.delay(4).as_secs_f64();
            assert!((6.4..=9.6).contains(&d), "{d}");
        }
    }
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// No attempts left (or the worker said so): the job is dead.
    Dead,
    /// Run again after this wait (zero: available at once).
    RetryIn(Duration),
}

impl AfterFailure {
    /// Decides the fate of a job whose attempt `attempt` of `max_attempts` failed. Every store
    /// applies this one rule.
    pub fn decide(
        attempt: u32,
        max_attempts: u32,
        retry_in: Option<Duration>,
        dead: bool,
        policy: &RetryPolicy,
    ) -> Self {
        if dead || attempt >= max_attempts {
            AfterFailure::Dead
        } else {
            AfterFailure::RetryIn(retry_in.unwrap_or_else(|| policy.delay(attempt)))
        }
    }

    /// The job's next state.
    pub fn state(&self) -> crate::JobState {
        match self {
            AfterFailure::Dead => crate::JobState::Dead,
            AfterFailure::RetryIn(d) if d.is_zero() => crate::JobState::Available,
            AfterFailure::RetryIn(_) => crate::JobState::Scheduled,
        }
    }

    /// When the job runs next, given the store's `now` in milliseconds (`now` when dead).
    pub fn run_at(&self, now: crate::Millis) -> crate::Millis {
        match self {
            AfterFailure::Dead => now,
            AfterFailure::RetryIn(d) => {
                now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }
        }
    }
}
