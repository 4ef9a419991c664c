//! When a schedule fires: cron expressions in a time zone, or fixed intervals.
//!
//! Cron parsing and occurrence search use `croner`; time zones use `jiff` with its bundled
//! database, so results do not depend on the host's tzdata.
//!
//! # Daylight-saving time
//!
//! A cron schedule in a local time zone follows these rules (croner's):
//! - **Spring forward** (a wall-clock hour does not exist): a slot whose wall time falls in
//!   the gap fires at the first instant after the gap, so a daily `30 2 * * *` in
//!   `Europe/Paris` fires at 03:00 on that day instead of vanishing.
//! - **Fall back** (a wall-clock hour happens twice): a fixed-time slot (`30 1 * * *`) fires
//!   once, at the earlier of the two instants; a pattern that repeats within the hour
//!   (`*/15 * * * *`) fires on both passes, because those are distinct real instants.
//!
//! An interval schedule (`every: 30s`) ignores wall clocks: its slots are the multiples of
//! the interval since the Unix epoch, so every node computes the same slots.

use std::time::Duration;

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::ValidationError;

/// Shortest interval: one second, the precision of slots.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What makes a schedule fire.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A cron expression (5 fields, or 6 with seconds first, or an `@hourly`-style alias)
    /// read in a time zone.
    Cron {
        /// The parsed expression.
        cron: Box<Cron>,
        /// The zone it is read in.
        tz: TimeZone,
    },
    /// Every so long, on multiples of the interval since the epoch.
    Every(Duration),
}

/// The IANA time zone `zone` names.
///
/// # Errors
/// A [`ValidationError`] naming `timezone` when this build does not know the zone.
pub fn time_zone(zone: &str) -> Result<TimeZone, ValidationError> {
    TimeZone::get(zone).map_err(|_| {
        ValidationError::new(
            "timezone",
            format!("`{zone}` is not an IANA time zone (e.g. UTC, Europe/Paris, America/New_York)"),
        )
    })
}

impl Trigger {
    /// Parses a cron expression in a time zone.
    ///
    /// # Errors
    /// A [`ValidationError`] naming `cron` or `timezone` that says what is wrong.
    pub fn cron(expr: &str, zone: &str) -> Result<Self, ValidationError> {
        let tz = time_zone(zone)?;
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let cron = parser.parse(expr.trim()).map_err(|e| {
            ValidationError::new(
                "cron",
                format!("`{expr}` is not a cron expression: {e} (use 5 fields, 6 with seconds, or @hourly/@daily/...)"),
            )
        })?;
        Ok(Trigger::Cron {
            cron: Box::new(cron),
            tz,
        })
    }

    /// An interval trigger.
    ///
    /// # Errors
    /// When the interval is shorter than a second or not a whole number of milliseconds.
    pub fn every(interval: Duration) -> Result<Self, ValidationError> {
        if interval < MIN_INTERVAL {
            return Err(ValidationError::new("every", "an interval is at least 1s"));
        }
        Ok(Trigger::Every(interval))
    }

    /// The first slot strictly after `after`, or `None` when the pattern never fires again.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Trigger::Cron { cron, tz } => {
                let zoned = after.to_zoned(tz.clone());
                cron.find_next_occurrence(&zoned, false)
                    .ok()
                    .map(|z| z.timestamp())
            }
            Trigger::Every(interval) => {
                let step = i128::try_from(interval.as_nanos()).ok()?;
                let t = after.as_nanosecond();
                let next = (t.div_euclid(step) + 1) * step;
                Timestamp::from_nanosecond(next).ok()
            }
        }
    }

    /// The latest slot at or before `at`, or `None` when there is none.
    ///
    /// Catch-up needs the newest missed slot after an outage of any length without walking
    /// forward through every slot of it. Intervals are a division; cron searches backwards
    /// (croner) and then walks forward from two occurrences back, so the answer is always a
    /// slot that [`next_after`](Self::next_after) produces, also across daylight-saving
    /// changes where a backward search sees wall times differently.
    pub fn last_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        match self {
            Trigger::Cron { cron, tz } => {
                let back = cron
                    .find_previous_occurrence(&at.to_zoned(tz.clone()), true)
                    .ok()?;
                let anchor = cron
                    .find_previous_occurrence(&back, false)
                    .map(|z| z.timestamp())
                    .unwrap_or(back.timestamp());
                let mut last = None;
                let mut t = anchor
                    .checked_sub(jiff::SignedDuration::from_nanos(1))
                    .ok()?;
                while let Some(next) = self.next_after(t) {
                    if next > at {
                        break;
                    }
                    last = Some(next);
                    t = next;
                }
                last
            }
            Trigger::Every(interval) => {
                let step = i128::try_from(interval.as_nanos()).ok()?;
                let slot = at.as_nanosecond().div_euclid(step) * step;
                Timestamp::from_nanosecond(slot).ok()
            }
        }
    }

    /// Up to `n` slots strictly after `after`.
    pub fn next_n(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// The slots in `(from, to]`, oldest first, at most `max`; `truncated` says whether
    /// more were left out.
    pub fn slots_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        max: usize,
    ) -> (Vec<Timestamp>, bool) {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = self.next_after(t) {
            if next > to {
                return (out, false);
            }
            if out.len() == max {
                return (out, true);
            }
            out.push(next);
            t = next;
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn five_and_six_field_expressions_and_aliases_parse() {
        assert!(Trigger::cron("0 3 * * *", "UTC").is_ok());
        assert!(Trigger::cron("*/5 0 3 * * *", "UTC").is_ok());
        assert!(Trigger::cron("@hourly", "UTC").is_ok());
        let bad = Trigger::cron("61 * * * *", "UTC").unwrap_err();
        assert_eq!(bad.field, "cron");
        let zone = Trigger::cron("0 3 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(zone.field, "timezone");
        assert!(Trigger::every(Duration::from_millis(500)).is_err());
    }

    #[test]
    fn daily_cron_in_a_zone_fires_at_local_time() {
        let t = Trigger::cron("0 3 * * *", "Europe/Paris").unwrap();
        // 03:00 in Paris in winter is 02:00 UTC.
        assert_eq!(
            t.next_after(ts("2026-01-10T12:00:00Z")),
            Some(ts("2026-01-11T02:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_slot_in_the_gap_fires_right_after_it() {
        // Paris springs forward on 2026-03-29 at 02:00 CET (01:00 UTC) to 03:00 CEST.
        let t = Trigger::cron("30 2 * * *", "Europe/Paris").unwrap();
        let fire = t.next_after(ts("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(
            fire,
            ts("2026-03-29T01:00:00Z"),
            "03:00 CEST, the first instant after the gap"
        );
        let after = t.next_after(fire).unwrap();
        assert_eq!(after, ts("2026-03-30T00:30:00Z"), "02:30 CEST the next day");
    }

    #[test]
    fn fall_back_fixed_time_fires_once() {
        // Paris falls back on 2026-10-25 at 03:00 CEST (01:00 UTC) to 02:00 CET.
        let t = Trigger::cron("30 2 * * *", "Europe/Paris").unwrap();
        let slots = t.next_n(ts("2026-10-24T12:00:00Z"), 2);
        assert_eq!(
            slots[0],
            ts("2026-10-25T00:30:00Z"),
            "the earlier 02:30 (CEST)"
        );
        assert_eq!(
            slots[1],
            ts("2026-10-26T01:30:00Z"),
            "not again at 02:30 CET"
        );
    }

    #[test]
    fn fall_back_repeating_pattern_fires_on_both_passes() {
        let t = Trigger::cron("0,30 * * * *", "Europe/Paris").unwrap();
        let (slots, _) =
            t.slots_between(ts("2026-10-25T00:00:00Z"), ts("2026-10-25T02:00:00Z"), 100);
        // 02:00 CEST, 02:30 CEST, 02:00 CET, 02:30 CET, 03:00 CET: real half hours, none lost.
        assert_eq!(
            slots,
            vec![
                ts("2026-10-25T00:30:00Z"),
                ts("2026-10-25T01:00:00Z"),
                ts("2026-10-25T01:30:00Z"),
                ts("2026-10-25T02:00:00Z"),
            ]
        );
    }

    #[test]
    fn intervals_align_to_the_epoch() {
        let t = Trigger::every(Duration::from_secs(30)).unwrap();
        assert_eq!(
            t.next_after(ts("2026-01-01T00:00:10Z")),
            Some(ts("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            t.next_after(ts("2026-01-01T00:00:30Z")),
            Some(ts("2026-01-01T00:01:00Z"))
        );
    }

    #[test]
    fn last_at_or_before_agrees_with_walking_forward_across_daylight_saving() {
        let cases = [
            ("30 2 * * *", "Europe/Paris", "2026-03-27T00:00:00Z"),
            ("30 2 * * *", "Europe/Paris", "2026-10-23T00:00:00Z"),
            ("0,30 * * * *", "Europe/Paris", "2026-10-24T22:00:00Z"),
            ("*/7 * * * * *", "America/New_York", "2026-11-01T05:30:00Z"),
        ];
        for (expr, zone, start) in cases {
            let t = Trigger::cron(expr, zone).unwrap();
            let start = ts(start);
            let (forward, _) =
                t.slots_between(start, start + jiff::SignedDuration::from_hours(80), 2_000);
            // Probe on, just before and just after every slot.
            for w in forward.windows(2) {
                let (a, b) = (w[0], w[1]);
                let one = jiff::SignedDuration::from_millis(1);
                assert_eq!(t.last_at_or_before(a), Some(a), "{expr} at {a}");
                assert_eq!(t.last_at_or_before(b - one), Some(a), "{expr} before {b}");
                assert_eq!(t.last_at_or_before(a + one), Some(a), "{expr} after {a}");
            }
        }
        let every = Trigger::every(Duration::from_secs(30)).unwrap();
        assert_eq!(
            every.last_at_or_before(ts("2026-01-01T00:00:59Z")),
            Some(ts("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            every.last_at_or_before(ts("2026-01-01T00:01:00Z")),
            Some(ts("2026-01-01T00:01:00Z"))
        );
    }

    #[test]
    fn slots_between_is_bounded() {
        let t = Trigger::every(Duration::from_secs(1)).unwrap();
        let (slots, truncated) =
            t.slots_between(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T01:00:00Z"), 10);
        assert_eq!(slots.len(), 10);
        assert!(truncated);
        let (slots, truncated) =
            t.slots_between(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:00:03Z"), 10);
        assert_eq!(slots.len(), 3);
        assert!(!truncated);
    }
}
