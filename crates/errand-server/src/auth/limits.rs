//! Abuse limits per token: a request rate (a token bucket per token, refilled at `rate`
//! a second and holding at most one second's worth) and a number of long polls and streams
//! held at once. Past either, `429 rate_limited` with `Retry-After`. Counted per node: with
//! N nodes behind a balancer a token gets up to N times the limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests a second per token unless configured (`--token-rate`).
pub const DEFAULT_RATE: u32 = 5_000;

/// Long polls and streams held at once per token unless configured (`--token-long-polls`).
pub const DEFAULT_LONG_POLLS: u32 = 1_000;

/// The limits and each token's use of them.
#[derive(Debug)]
pub(crate) struct TokenLimiter {
    rate: f64,
    long_polls: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    polls: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Why a token's request was turned away, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Limited {
    /// Over the request rate; a request fits again after this long.
    Rate(Duration),
    /// Holding as many long polls as it may.
    LongPolls(u32),
}

impl TokenLimiter {
    /// Limits of `rate` requests a second and `long_polls` held at once (0: no limit).
    pub(crate) fn new(rate: u32, long_polls: u32) -> Self {
        Self {
            rate: f64::from(rate),
            long_polls,
            buckets: Mutex::default(),
            polls: Mutex::default(),
        }
    }

    /// Takes one request from `token`'s bucket.
    pub(crate) fn request(&self, token: &str, now: Instant) -> Result<(), Limited> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let (level, at) = buckets.entry(token.to_string()).or_insert((self.rate, now));
        *level =
            (*level + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.rate);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(Limited::Rate(Duration::from_secs_f64(
                (1.0 - *level) / self.rate,
            )))
        }
    }

    /// A place for one of `token`'s long polls or streams, held until the answer ends.
    pub(crate) fn long_poll(&self, token: &str) -> Result<Option<OwnedSemaphorePermit>, Limited> {
        if self.long_polls == 0 {
            return Ok(None);
        }
        let places = match self.polls.lock() {
            Ok(mut polls) => polls
                .entry(token.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.long_polls as usize)))
                .clone(),
            Err(_) => return Ok(None),
        };
        places
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| Limited::LongPolls(self.long_polls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_rate_and_refills_with_time() {
        let l = TokenLimiter::new(10, 0);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.request("a", t0), Ok(()));
        }
        let Err(Limited::Rate(wait)) = l.request("a", t0) else {
            panic!("the eleventh request in the same instant is over the rate");
        };
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(
            l.request("b", t0),
            Ok(()),
            "another token has its own bucket"
        );
        assert_eq!(l.request("a", t0 + Duration::from_millis(100)), Ok(()));
        assert!(l.request("a", t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn long_polls_are_held_until_released() {
        let l = TokenLimiter::new(0, 2);
        let a = l.long_poll("t").expect("first");
        let _b = l.long_poll("t").expect("second");
        assert_eq!(l.long_poll("t").err(), Some(Limited::LongPolls(2)));
        drop(a);
        assert!(l.long_poll("t").is_ok());
    }
}
