//! What a settlement may carry. The server refuses a whole settle call when one entry holds
//! a NUL character (no store keeps one in text; PostgreSQL's `jsonb` refuses `\u0000`) or
//! asks for a retry past the year 9999, so the worker mends both before it sends: one
//! handler's odd output must not cost the settlements it shares a call with.

use std::time::Duration;

use serde_json::{Map, Value};

/// The longest retry delay a worker asks for: beyond a month a "retry" is a scheduling
/// mistake, and an unbounded one (`Duration::MAX`) is refused by the server.
pub(crate) const MAX_RETRY_IN: Duration = Duration::from_secs(30 * 24 * 3600);

/// What stands for a NUL character: the replacement character, as for log lines.
const NUL_STANDS_FOR: &str = "\u{FFFD}";

/// `text` with each NUL character replaced.
pub(crate) fn text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', NUL_STANDS_FOR)
    } else {
        text
    }
}

/// `value` with each NUL character in its strings and keys replaced.
pub(crate) fn json(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(text(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (text(k), json(v)))
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

/// `delay`, at most [`MAX_RETRY_IN`].
pub(crate) fn retry_in(delay: Duration) -> Duration {
    delay.min(MAX_RETRY_IN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_characters_are_replaced_everywhere_and_nothing_else_changes() {
        assert_eq!(text("a\0b\0".into()), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(text("plain".into()), "plain");
        let mended = json(json!({"k\u{0}": ["x\u{0}", 1, null, {"n": "\u{0}"}], "ok": true}));
        assert_eq!(
            mended,
            json!({"k\u{FFFD}": ["x\u{FFFD}", 1, null, {"n": "\u{FFFD}"}], "ok": true})
        );
        assert!(!serde_json::to_string(&mended)
            .expect("json")
            .contains("\\u0000"));
    }

    #[test]
    fn retry_delays_are_capped_at_a_month() {
        assert_eq!(retry_in(Duration::MAX), MAX_RETRY_IN);
        assert_eq!(retry_in(Duration::from_secs(5)), Duration::from_secs(5));
    }
}
