//! Validated names. A queue or kind name that reaches a store has passed these checks.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::text_schema::{kind_pattern, SAFE_NAME_PATTERN};
use crate::ValidationError;

/// Longest queue name: long enough for `tenant.region.purpose`, short enough for an index.
pub const MAX_QUEUE_NAME_LEN: usize = 128;
/// Longest job kind: kinds are often Rust or Java type paths.
pub const MAX_KIND_LEN: usize = 255;

/// Whether `c` may appear in text a reader sees as a name or a label (a job kind, a tag, an
/// idempotency key, a worker's name): not a control character (Unicode category Cc), not
/// an invisible format character (Cf: bidirectional overrides and isolates U+202A–U+202E
/// and U+2066–U+2069, zero-width spaces and joiners U+200B–U+200F, U+2060–U+2064, the byte
/// order mark U+FEFF, ...), not a line or paragraph separator (Zl, Zp). Any of those would
/// let a name look, on the dashboard or in a terminal, like something it is not.
pub fn is_visible(c: char) -> bool {
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Checks text shown as a name or label: 1 to `max` characters (Unicode scalar values,
/// not bytes: 255 × `é` is 255 characters), every one [visible](is_visible). The one rule
/// for every such text, so kinds, tags, keys and worker names are counted and filtered
/// alike.
///
/// # Errors
/// A [`ValidationError`] naming `field` that says which rule was broken.
pub fn check_label(field: &str, text: &str, max: usize) -> Result<(), ValidationError> {
    let count = text.chars().count();
    if count == 0 || count > max {
        return Err(ValidationError::new(
            field,
            format!("must have 1 to {max} characters (has {count})"),
        ));
    }
    if let Some(bad) = text.chars().find(|c| !is_visible(*c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "must not contain U+{:04X}: no control, invisible format (bidirectional, zero-width) or line separator characters",
                u32::from(bad)
            ),
        ));
    }
    Ok(())
}

/// A queue's name: 1 to 128 characters from `A-Z a-z 0-9 _ - . :`, so it is safe in URLs,
/// metrics labels and file names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct QueueName(String);

impl QueueName {
    /// Checks and wraps a queue name.
    ///
    /// # Errors
    /// When the name is empty, too long or has a character outside the allowed set.
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        // Every allowed character is ASCII, but count characters so the message is true
        // whatever the name holds.
        let count = name.chars().count();
        if count == 0 || count > MAX_QUEUE_NAME_LEN {
            return Err(ValidationError::new(
                "queue",
                format!("a queue name has 1 to {MAX_QUEUE_NAME_LEN} characters"),
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
        {
            return Err(ValidationError::new(
                "queue",
                format!(
                    "`{}` is not allowed in a queue name (use A-Z a-z 0-9 _ - . :)",
                    bad.escape_default()
                ),
            ));
        }
        Ok(Self(name.to_string()))
    }

    /// The queue jobs go to when they name none.
    pub fn default_queue() -> Self {
        Self("default".to_string())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for QueueName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A schedule's name. Schedules are not queues: their names live in a namespace of their
/// own (a schedule `reports` and a queue `reports` are unrelated), so they get their own
/// type, with the same safe characters as queue names for the same reasons (URLs, labels).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ScheduleName(String);

impl ScheduleName {
    /// Checks and wraps a schedule name: 1 to 128 characters from `A-Z a-z 0-9 _ - . :`.
    ///
    /// # Errors
    /// When the name is empty, too long or has a character outside the allowed set.
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        QueueName::parse(name)
            .map(|q| Self(q.0))
            .map_err(|e| ValidationError::new("name", e.message.replace("queue", "schedule")))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ScheduleName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl fmt::Display for ScheduleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job kind: which handler runs the job. 1 to 255 characters, no whitespace, none that
/// [`check_label`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobKind(String);

impl JobKind {
    /// Checks and wraps a kind.
    ///
    /// # Errors
    /// When the kind is empty, too long, or has whitespace, control or invisible
    /// characters.
    pub fn parse(kind: &str) -> Result<Self, ValidationError> {
        check_label("kind", kind, MAX_KIND_LEN)?;
        if let Some(bad) = kind.chars().find(|c| c.is_whitespace()) {
            return Err(ValidationError::new(
                "kind",
                format!(
                    "`{}` is not allowed in a job kind (no whitespace)",
                    bad.escape_default()
                ),
            ));
        }
        Ok(Self(kind.to_string()))
    }

    /// The kind as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for JobKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

crate::text_schema_for!(
    QueueName,
    SAFE_NAME_PATTERN,
    MAX_QUEUE_NAME_LEN,
    "A queue name: 1 to 128 characters from A-Z a-z 0-9 _ - . :",
    "default"
);
crate::text_schema_for!(
    ScheduleName,
    SAFE_NAME_PATTERN,
    MAX_QUEUE_NAME_LEN,
    "A schedule name: 1 to 128 characters from A-Z a-z 0-9 _ - . :",
    "nightly-report"
);
crate::text_schema_for!(
    JobKind,
    kind_pattern(),
    MAX_KIND_LEN,
    "A job kind: 1 to 255 characters, no whitespace, control or invisible format characters",
    "send_email"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_accept_the_safe_set_only() {
        assert!(QueueName::parse("mail.eu-west:high_1").is_ok());
        assert!(QueueName::parse("").is_err());
        assert!(QueueName::parse("a b").is_err());
        assert!(QueueName::parse("a/b").is_err());
        assert!(QueueName::parse("nul\0").is_err());
        assert!(QueueName::parse(&"q".repeat(129)).is_err());
    }

    #[test]
    fn schedule_names_accept_the_safe_set_and_say_schedule() {
        assert!(ScheduleName::parse("nightly-report.eu").is_ok());
        let bad = ScheduleName::parse("a b").unwrap_err();
        assert_eq!(bad.field, "name");
        assert!(bad.message.contains("schedule name"), "{}", bad.message);
    }

    #[test]
    fn kinds_reject_whitespace_and_control_characters() {
        assert!(JobKind::parse("App::Mailer/Send").is_ok());
        assert!(JobKind::parse("send mail").is_err());
        assert!(JobKind::parse("x\u{0}").is_err());
        assert!(JobKind::parse("").is_err());
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(JobKind::parse(&"é".repeat(MAX_KIND_LEN)).is_ok());
        assert!(JobKind::parse(&"é".repeat(MAX_KIND_LEN + 1)).is_err());
        assert!(check_label("tags[0]", &"日".repeat(255), 255).is_ok());
        let long = check_label("tags[0]", &"日".repeat(256), 255).unwrap_err();
        assert!(long.message.contains("has 256"), "{}", long.message);
        assert!(check_label("tags[0]", "", 255).is_err());
    }

    #[test]
    fn invisible_and_reordering_characters_are_refused() {
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{200F}', '\u{2060}',
            '\u{2064}', '\u{FEFF}', '\u{0}', '\u{7}', '\u{85}', '\u{2028}', '\u{2029}',
        ] {
            let kind = format!("send{c}mail");
            let err = JobKind::parse(&kind).unwrap_err();
            assert!(
                err.message.contains(&format!("U+{:04X}", u32::from(c))),
                "{c:?}: {}",
                err.message
            );
            assert!(
                check_label("tags[0]", &kind, 255).is_err(),
                "{c:?} in a tag"
            );
        }
        assert!(check_label("tags[0]", "naïve café 日本 🎉 a-b", 255).is_ok());
    }
}
