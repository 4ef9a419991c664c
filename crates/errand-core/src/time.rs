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
