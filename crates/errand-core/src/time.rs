//! Time as stores keep it: milliseconds since the Unix epoch.

use jiff::Timestamp;

/// Milliseconds since the Unix epoch. Stores keep every instant in this form so lease and
/// schedule arithmetic is plain integer arithmetic on every backend.
pub type Millis = i64;

/// Converts stored milliseconds to a timestamp for display; out-of-range values clamp.
pub fn to_timestamp(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Converts a timestamp to stored milliseconds.
pub fn to_millis(ts: Timestamp) -> Millis {
    ts.as_millisecond()
}

/// The instant `after` from `now`, when it is one errand can keep: no later than the end
/// of the year 9999, the last instant RFC 3339 (and so an explicit `run_at`) can name. A
/// delay or a retry beyond it is refused, as such a `run_at` is, rather than clamped.
///
/// # Errors
/// A [`ValidationError`] naming `field` when the instant would be past the year 9999.
pub fn checked_after(
    field: &str,
    now: Millis,
    after: std::time::Duration,
) -> Result<Millis, crate::ValidationError> {
    i64::try_from(after.as_millis())
        .ok()
        .and_then(|ms| now.checked_add(ms))
        .filter(|at| *at <= Timestamp::MAX.as_millisecond())
        .ok_or_else(|| {
            crate::ValidationError::new(
                field,
                format!(
                    "{} days from now is past the year 9999, the latest time errand keeps",
                    after.as_secs() / 86_400
                ),
            )
        })
}

/// The machine clock in milliseconds. Only stores that have no clock of their own (SQLite,
/// through its [`Clock`]) call this; everything else asks its store.
pub fn system_now() -> Millis {
    to_millis(Timestamp::now())
}

/// A store's source of "now": the machine clock, optionally moved by an offset.
///
/// A store that takes its time from the node (SQLite) reads it through one of these, so a
/// test can move the store's time forward instead of sleeping until a lease or a retention
/// runs out. The production clock ([`Clock::system`], the default) has no offset and costs
/// what [`system_now`] costs; only a clock made by [`Clock::adjustable`] carries one, and
/// its clones share it, so advancing any clone advances the store.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

impl Clock {
    /// The machine clock, unmoved: what every production store uses.
    pub fn system() -> Self {
        Self::default()
    }

    /// The machine clock plus an offset that starts at zero and that
    /// [`advance`](Self::advance) moves forward: for tests that drive the store's time.
    pub fn adjustable() -> Self {
        Self {
            offset: Some(std::sync::Arc::default()),
        }
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now(&self) -> Millis {
        let now = system_now();
        match &self.offset {
            None => now,
            Some(offset) => now.saturating_add(offset.load(std::sync::atomic::Ordering::Relaxed)),
        }
    }

    /// Moves this clock, and every clone of it, forward by `by`. A no-op on the system
    /// clock, which cannot be moved: a production store's time is the machine's.
    pub fn advance(&self, by: std::time::Duration) {
        if let Some(offset) = &self.offset {
            let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            let _ = offset.fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |o| Some(o.saturating_add(ms)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_instant_past_the_year_9999_is_refused() {
        let now = system_now();
        let year = Duration::from_secs(366 * 24 * 3600);
        assert_eq!(
            checked_after("delay", now, year),
            Ok(now + 366 * 24 * 3600 * 1000)
        );
        let end = Timestamp::MAX.as_millisecond();
        let to_end = Duration::from_millis(u64::try_from(end - now).unwrap());
        assert_eq!(checked_after("delay", now, to_end), Ok(end));
        let err = checked_after("delay", now, to_end + Duration::from_millis(1)).unwrap_err();
        assert_eq!(err.field, "delay");
        assert!(err.message.contains("9999"), "{}", err.message);
        assert!(checked_after("retry_in_ms", now, Duration::MAX).is_err());
        // Said in days, which people read, not in years, months and seconds.
        let err = checked_after("delay", now, Duration::from_secs(9_999_999 * 86_400)).unwrap_err();
        assert!(
            err.message
                .starts_with("9999999 days from now is past the year 9999"),
            "{}",
            err.message
        );
    }

    #[test]
    fn an_adjustable_clock_moves_with_its_clones_and_the_system_clock_does_not() {
        let clock = Clock::adjustable();
        let clone = clock.clone();
        let before = clock.now();
        clone.advance(Duration::from_secs(3600));
        assert!(clock.now() >= before + 3_600_000);
        let system = Clock::system();
        system.advance(Duration::from_secs(3600));
        assert!(system.now() < clock.now());
    }
}
