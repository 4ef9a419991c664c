//! A job's secret values: kept with the job, handed only to whoever runs it, shown
//! everywhere else as `"***"` with the names kept.
//!
//! The redaction lives in this type, not in the routes: [`Secrets`] serialises (and prints
//! with `{:?}`) its values as [`REDACTED`], so a job in an API answer, an event, a webhook,
//! the dashboard or a log line cannot carry them. The two places that need the values ask
//! for them by name: the claim answer ([`Secrets::reveal`]) and the script runner.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// What stands for a secret value wherever it is shown.
pub const REDACTED: &str = "***";

/// At most this many secrets per job.
pub const MAX_SECRETS: usize = 64;

/// The longest secret value, in bytes (8 KiB).
pub const MAX_SECRET_BYTES: usize = 8 * 1024;

/// A job's secrets by name. Serialises with every value replaced by [`REDACTED`];
/// deserialises whatever map it is given (a redacted one stays redacted).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, String>);

/// Whether `name` is usable as an environment variable: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Secrets {
    /// Checks names, count and sizes of secrets a caller sent.
    ///
    /// # Errors
    /// A `ValidationError` naming `field` (or `field.NAME`) and the rule broken.
    pub fn new(field: &str, values: BTreeMap<String, String>) -> Result<Self, ValidationError> {
        if values.len() > MAX_SECRETS {
            return Err(ValidationError::new(
                field,
                format!("at most {MAX_SECRETS} secrets; got {}", values.len()),
            ));
        }
        for (name, value) in &values {
            if !is_env_name(name) {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "secret name `{}` must match [A-Za-z_][A-Za-z0-9_]* (at most 255 characters)",
                        name.chars().take(64).collect::<String>()
                    ),
                ));
            }
            if name.len() > crate::limits::MAX_LABEL_LEN {
                return Err(ValidationError::new(
                    format!("{field}.{}", &name[..32]),
                    "secret names are at most 255 characters",
                ));
            }
            if value.len() > MAX_SECRET_BYTES {
                return Err(ValidationError::new(
                    format!("{field}.{name}"),
                    format!(
                        "is {} bytes; a secret value is at most {MAX_SECRET_BYTES} bytes",
                        value.len()
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(ValidationError::new(
                    format!("{field}.{name}"),
                    "must not contain NUL characters (\\u0000)",
                ));
            }
        }
        Ok(Self(values))
    }

    /// Secrets as a store kept them (already checked when they were sent).
    pub fn from_stored(values: BTreeMap<String, String>) -> Self {
        Self(values)
    }

    /// No secrets.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The real values: only for the claim answer, the runner, stores and `export
    /// --include-secrets`.
    pub fn reveal(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The JSON object a store keeps (names to real values); `None` when there are none.
    pub fn to_stored(&self) -> Option<serde_json::Value> {
        (!self.is_empty()).then(|| {
            serde_json::Value::Object(
                self.0
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            )
        })
    }

    /// Reads what [`Secrets::to_stored`] wrote (`None`: no secrets).
    ///
    /// # Errors
    /// The value is not an object of strings (the message holds no value).
    pub fn from_stored_json(v: Option<serde_json::Value>) -> Result<Self, String> {
        match v {
            None => Ok(Self::default()),
            Some(v) => serde_json::from_value(v)
                .map(Self)
                .map_err(|_| "secrets: not an object of strings".to_owned()),
        }
    }

    /// The names with every value replaced by [`REDACTED`].
    pub fn redacted(&self) -> BTreeMap<String, &'static str> {
        self.0.keys().map(|k| (k.clone(), REDACTED)).collect()
    }

    /// A redactor for text that may contain these values (log lines of a run).
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.0.values().cloned())
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

impl Serialize for Secrets {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Secrets {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Self)
    }
}

/// The shortest line of a multi-line secret redacted on its own: shorter lines (a blank,
/// a `}`) would mask ordinary output and say little of the secret.
pub const MIN_LINE_CHARS: usize = 8;

/// Replaces known secret values in text with [`REDACTED`]. The one place the text a run
/// reports (log lines, results, errors, progress) is cleaned: one pass over the text finds
/// every value (an Aho-Corasick automaton, longest match first), so the cost of a line does
/// not grow with the number of values.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The values, as given and with the lines of multi-line ones.
    values: Vec<String>,
    /// Finds them all in one pass; `None` when there are none.
    finder: Option<std::sync::Arc<aho_corasick::AhoCorasick>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

impl Redactor {
    /// A redactor for these values; empty values are ignored. A value of several lines
    /// also gives each of its lines of [`MIN_LINE_CHARS`] or more, since a script's output
    /// reaches the log one line at a time.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .flat_map(|v| {
                let lines: Vec<String> = if v.contains('\n') {
                    v.lines()
                        .map(|l| l.trim_end_matches('\r'))
                        .filter(|l| l.chars().count() >= MIN_LINE_CHARS)
                        .map(str::to_owned)
                        .collect()
                } else {
                    Vec::new()
                };
                std::iter::once(v).chain(lines)
            })
            .filter(|v| !v.is_empty())
            .collect();
        values.sort();
        values.dedup();
        let finder = (!values.is_empty())
            .then(|| {
                aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(&values)
                    .ok()
            })
            .flatten()
            .map(std::sync::Arc::new);
        Self { values, finder }
    }

    /// Adds more values (a definition's `secret_env`).
    pub fn with(mut self, more: impl IntoIterator<Item = String>) -> Self {
        self.values.extend(more);
        Self::new(self.values)
    }

    /// Nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.finder.is_none()
    }

    /// Whether `text` holds a known value.
    pub fn finds(&self, text: &str) -> bool {
        self.finder.as_ref().is_some_and(|f| f.is_match(text))
    }

    /// Whether any string in `value` (keys included) holds a known value.
    pub fn finds_in_json(&self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::String(s) => self.finds(s),
            Value::Array(items) => items.iter().any(|v| self.finds_in_json(v)),
            Value::Object(map) => map
                .iter()
                .any(|(k, v)| self.finds(k) || self.finds_in_json(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }

    /// Every string value in `value` (at any depth; keys are left as they are) redacted:
    /// what a script reports as its result.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                let redacted = self.redact(s);
                if redacted != *s {
                    *s = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            // Keys stay: two keys redacted alike would fold into one and lose a value.
            Value::Object(map) => map.values_mut().for_each(|v| self.redact_json(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// `text` with every known value replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        match &self.finder {
            Some(finder) if finder.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                finder.replace_all_with(text, &mut out, |_, _, out| {
                    out.push_str(REDACTED);
                    true
                });
                out
            }
            _ => text.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_multi_line_value_is_redacted_line_by_line_and_json_everywhere() {
        let r = Redactor::new([
            "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nab\n-----END KEY-----".to_owned(),
        ]);
        assert_eq!(r.redact("MIIEvQIBADANBgkq"), "***");
        assert_eq!(r.redact("ab"), "ab", "a short line stays");
        let mut v = serde_json::json!({"MIIEvQIBADANBgkq": ["x MIIEvQIBADANBgkq", 1, {"k": "MIIEvQIBADANBgkq"}], "-----END KEY-----": 2});
        assert!(r.finds_in_json(&v));
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"MIIEvQIBADANBgkq": ["x ***", 1, {"k": "***"}], "-----END KEY-----": 2}),
            "values are redacted, keys kept (two keys would otherwise fold into one)"
        );
    }

    #[test]
    fn values_never_serialise_or_print() {
        let s = Secrets::new("secrets", map(&[("API_KEY", "hunter2")])).expect("valid");
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(json, r#"{"API_KEY":"***"}"#);
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.reveal()["API_KEY"], "hunter2");
    }

    #[test]
    fn bad_names_counts_and_sizes_name_the_field() {
        let e = Secrets::new("secrets", map(&[("1BAD", "x")])).expect_err("bad name");
        assert_eq!(e.field, "secrets");
        let big = "x".repeat(MAX_SECRET_BYTES + 1);
        let e = Secrets::new("secrets", map(&[("OK", &big)])).expect_err("too big");
        assert_eq!(e.field, "secrets.OK");
        let many = (0..=MAX_SECRETS).map(|i| (format!("S{i}"), "v".to_owned()));
        assert!(Secrets::new("secrets", many.collect()).is_err());
        assert!(is_env_name("_A1") && !is_env_name("") && !is_env_name("A-B"));
    }

    #[test]
    fn the_redactor_replaces_every_value_longest_first() {
        let r = Redactor::new(["abc".to_owned(), "abcdef".to_owned(), String::new()]);
        assert_eq!(r.redact("x abcdef y abc"), "x *** y ***");
    }
}
