//! Schedules: a cron expression in a time zone (`Trigger::cron`, what `POST /v1/schedules`
//! and job definitions' `schedule` parse with croner) and whole `POST /v1/schedules` bodies
//! (read as the server reads them, then `ScheduleRequest::into_spec`).
//!
//! Input: the first byte picks the form. Even: `<cron>\n<zone>` (no newline: UTC); odd: a
//! JSON body. Properties: nothing panics; a slot after `t` is after `t`; the latest slot at
//! or before `t` is not after `t`; a spec `into_spec` accepts has a trigger and the
//! jitter and catch-up window asked for, to the millisecond.
#![no_main]

use errand_api::{EnqueueLimits, ScheduleRequest};
use errand_core::schedule::Trigger;
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;

fn probe(trigger: &Trigger) {
    // A fixed instant (reproducible), one near a daylight-saving change, the epoch.
    for at in [1_764_072_000, 1_774_746_000, 0] {
        let at = Timestamp::from_second(at).expect("a valid instant");
        if let Some(next) = trigger.next_after(at) {
            assert!(next > at, "next_after({at}) = {next}");
        }
        if let Some(last) = trigger.last_at_or_before(at) {
            assert!(last <= at, "last_at_or_before({at}) = {last}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    if form % 2 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let (expr, zone) = text.split_once('\n').unwrap_or((text, "UTC"));
        if let Ok(trigger) = Trigger::cron(expr, zone) {
            probe(&trigger);
        }
    } else {
        let Ok(req) = errand_server::parse_json_body::<ScheduleRequest>(rest) else {
            return;
        };
        let limits = EnqueueLimits {
            max_payload_bytes: 1024 * 1024,
        };
        let (jitter, window) = (req.jitter, req.catch_up_window);
        if let Ok(spec) = req.into_spec(&limits) {
            // What was accepted is what was asked for, to the millisecond.
            if let Some(j) = jitter {
                assert_eq!(u128::from(spec.jitter_ms), j.0.as_millis(), "jitter");
            }
            if let Some(w) = window {
                assert_eq!(
                    u128::from(spec.catch_up_window_ms),
                    w.0.as_millis(),
                    "window"
                );
            }
            let trigger = spec.trigger().expect("an accepted spec has a trigger");
            probe(&trigger);
        }
    }
});
