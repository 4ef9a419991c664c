//! What templates show, formatted once in Rust: times relative and absolute, durations,
//! counts, JSON, URLs with query strings, and the row of a job in a table. Templates only
//! place these strings (askama escapes each), so no page formats a value its own way.

use errand_core::{Job, JobState};
use jiff::Timestamp;

/// An instant as the dashboard shows it: `<time datetime="{iso}" title="{abs}">{rel}</time>`.
/// app.js keeps `rel` current as the page stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct When {
    /// RFC 3339, for `datetime` and for app.js.
    pub(crate) iso: String,
    /// `2025-12-02 15:33:07 UTC`.
    pub(crate) abs: String,
    /// `3 min ago`, `in 20 s`.
    pub(crate) rel: String,
}

impl When {
    /// `at`, relative to `now`.
    pub(crate) fn of(at: Timestamp, now: Timestamp) -> Self {
        Self {
            iso: at.to_string(),
            abs: at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            rel: relative(at.as_millisecond() - now.as_millisecond()),
        }
    }

    /// `at` relative to `now`, when there is one.
    pub(crate) fn maybe(at: Option<Timestamp>, now: Timestamp) -> Option<Self> {
        at.map(|t| Self::of(t, now))
    }
}

/// `delta_ms` (the instant minus now) in words: `just now`, `12 s ago`, `in 3 min`.
pub(crate) fn relative(delta_ms: i64) -> String {
    let secs = delta_ms.unsigned_abs() / 1000;
    if secs < 5 {
        return "just now".into();
    }
    let amount = if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min", secs / 60)
    } else if secs < 48 * 3600 {
        format!("{} h", secs / 3600)
    } else {
        format!("{} d", secs / 86_400)
    };
    if delta_ms < 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// A duration in milliseconds, short: `850 ms`, `4.2 s`, `3 min 10 s`, `2 h 5 min`.
pub(crate) fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        two_units(ms / 60_000, "min", (ms % 60_000) / 1000, "s")
    } else {
        two_units(ms / 3_600_000, "h", (ms % 3_600_000) / 60_000, "min")
    }
}

/// `3 min 10 s`, or `3 min` when the smaller unit is zero.
fn two_units(big: u64, big_unit: &str, small: u64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big} {big_unit}")
    } else {
        format!("{big} {big_unit} {small} {small_unit}")
    }
}

/// The time from `from` to `to`, when both are known and in order.
pub(crate) fn between(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<String> {
    let (from, to) = (from?, to?);
    let ms = to.as_millisecond() - from.as_millisecond();
    u64::try_from(ms).ok().map(duration_ms)
}

/// A count with thousands separated: `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// JSON indented for a `<pre>`.
pub(crate) fn pretty_json(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// `path?k=v&...` with each pair form-encoded and empty values left out.
pub(crate) fn query_url(path: &str, pairs: &[(&str, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            query.append_pair(k, v);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// A job as a row of the jobs and dead-jobs tables.
pub(crate) struct JobRow {
    /// Its id.
    pub(crate) id: String,
    /// Its detail page.
    pub(crate) href: String,
    /// Its kind.
    pub(crate) kind: String,
    /// Its queue.
    pub(crate) queue: String,
    /// Its state.
    pub(crate) state: &'static str,
    /// `2 / 25`.
    pub(crate) attempts: String,
    /// When it was enqueued.
    pub(crate) created: When,
    /// When it last changed.
    pub(crate) updated: When,
    /// Its last failure, first line, for the dead list.
    pub(crate) error: String,
    /// Its tags.
    pub(crate) tags: Vec<String>,
}

impl JobRow {
    /// The row of `job`.
    pub(crate) fn of(job: &Job, now: Timestamp) -> Self {
        Self {
            id: job.id.to_string(),
            href: format!("/ui/jobs/{}", job.id),
            kind: job.kind.to_string(),
            queue: job.queue.to_string(),
            state: job.state.as_str(),
            attempts: format!("{} / {}", job.attempt, job.max_attempts),
            created: When::of(job.created_at, now),
            updated: When::of(job.updated_at, now),
            error: job
                .error
                .as_deref()
                .and_then(|e| e.lines().next())
                .map(|l| truncate(l, 200))
                .unwrap_or_default(),
            tags: job.tags.clone(),
        }
    }
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The states, for filter menus.
pub(crate) fn state_names() -> Vec<&'static str> {
    JobState::ALL.iter().map(|s| s.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_people_say_them() {
        assert_eq!(relative(-1_000), "just now");
        assert_eq!(relative(-12_000), "12 s ago");
        assert_eq!(relative(-180_000), "3 min ago");
        assert_eq!(relative(7_200_000), "in 2 h");
        assert_eq!(relative(-5 * 86_400_000), "5 d ago");
    }

    #[test]
    fn durations_and_counts_are_short_and_grouped() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(4_200), "4.2 s");
        assert_eq!(duration_ms(190_000), "3 min 10 s");
        assert_eq!(duration_ms(7_500_000), "2 h 5 min");
        assert_eq!(duration_ms(3_600_000), "1 h");
        assert_eq!(duration_ms(300_000), "5 min");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn query_urls_encode_values_and_skip_empty_ones() {
        assert_eq!(
            query_url(
                "/ui/jobs",
                &[("kind", "a&b <c>".into()), ("queue", String::new())]
            ),
            "/ui/jobs?kind=a%26b+%3Cc%3E"
        );
        assert_eq!(query_url("/ui/jobs", &[]), "/ui/jobs");
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 2), "hé");
    }
}
