//! Capped, jittered exponential backoff for calls to a host that is away.

use std::time::Duration;

/// The shortest step: a zero step would call a host that answers at once in a busy loop.
const MIN_STEP: Duration = Duration::from_millis(1);

/// The delays between attempts to reach a host: doubling from `min` (at least 1 ms) up to
/// `max`, each drawn between half and all of its step so that many workers do not call in
/// step.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(MIN_STEP);
        Self {
            min,
            max: max.max(min),
            step: min,
        }
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let nanos = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::random_range(nanos / 2..=nanos))
    }

    /// Back to the shortest delay after a success.
    pub(crate) fn reset(&mut self) {
        self.step = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        for d in &delays {
            assert!(*d <= Duration::from_secs(1), "{d:?} is over the cap");
        }
        assert!(delays[7] >= Duration::from_millis(500), "{:?}", delays[7]);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn a_zero_minimum_still_waits() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        for _ in 0..100 {
            assert!(b.next_delay() >= Duration::from_micros(500));
        }
    }
}
