//! Durations as users write them (`"30s"`, `"1h 30m"`, `"250ms"`, plain milliseconds):
//! `errand_core::duration::parse` and the API's `FlexDuration` (a JSON number or string).
//! Properties: nothing panics; a parsed duration, formatted, parses back to itself.
#![no_main]

use errand_core::duration::{self, FlexDuration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = duration::parse("d", text) {
        let shown = duration::format(d);
        assert_eq!(
            duration::parse("d", &shown).ok(),
            Some(d),
            "{text:?} parsed as {d:?}, shown as {shown:?}, which does not parse back"
        );
    }
    // The same text as an API body's duration field: a JSON value.
    if let Ok(FlexDuration(d)) = serde_json::from_str::<FlexDuration>(text) {
        let back = serde_json::to_string(&FlexDuration(d)).expect("a duration serialises");
        assert_eq!(
            serde_json::from_str::<FlexDuration>(&back).ok(),
            Some(FlexDuration(d)),
            "{text:?} read as {d:?}, written as {back}"
        );
    }
});
