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

/// The machine clock in milliseconds. Only stores that have no clock of their own (SQLite)
/// call this; everything else asks its store.
pub fn system_now() -> Millis {
    to_millis(Timestamp::now())
}
