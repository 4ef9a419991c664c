//! JSON Schemas of the texts errand checks (names, kinds, tags), written once next to the
//! rules so the OpenAPI document refuses exactly what the parsers refuse.
//!
//! Patterns are ECMA-262 and Python `re` compatible (negated classes of `\u` escapes and
//! literal characters, no
//! length quantifiers): lengths go in `minLength`/`maxLength`, which count characters as
//! the parsers do.

use std::sync::LazyLock;

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

use crate::names::is_visible;

/// Characters allowed in queue and schedule names: safe in URLs, metrics labels and file
/// names.
pub const SAFE_NAME_PATTERN: &str = "^[A-Za-z0-9_.:-]+$";

/// Text shown as a label (a tag, an idempotency key, a worker's name): no character that
/// [`is_visible`] refuses.
pub fn visible_pattern() -> &'static str {
    static PATTERN: LazyLock<String> = LazyLock::new(|| refusing_pattern(|c| !is_visible(c)));
    &PATTERN
}

/// A lock, concurrency, session, fairness or rate key: any text without control
/// characters, as [`JobOrdering::validate`](crate::ordering::JobOrdering::validate) checks it.
pub fn key_pattern() -> &'static str {
    static PATTERN: LazyLock<String> = LazyLock::new(|| refusing_pattern(char::is_control));
    &PATTERN
}

/// A job kind: a [visible](visible_pattern) label without whitespace, as [`JobKind::parse`]
/// checks it.
///
/// [`JobKind::parse`]: crate::JobKind::parse
pub fn kind_pattern() -> &'static str {
    static PATTERN: LazyLock<String> =
        LazyLock::new(|| refusing_pattern(|c| !is_visible(c) || c.is_whitespace()));
    &PATTERN
}

/// A workflow, step or workflow template name: no whitespace or control character, as
/// [`WorkflowSpec::validate`](crate::workflow::WorkflowSpec::validate) checks it.
pub fn workflow_name_pattern() -> &'static str {
    static PATTERN: LazyLock<String> =
        LazyLock::new(|| refusing_pattern(|c| c.is_control() || c.is_whitespace()));
    &PATTERN
}

/// `^[^...]+$` excluding every character `refused` names, derived from the rule itself so
/// the document cannot drift from the parser (a new Unicode version moves both). Runs in the
/// Basic Multilingual Plane are `\uXXXX` ranges; characters above U+FFFF are written
/// literally, one by one, because neither ECMA-262 without the `u` flag nor Python `re`
/// shares an escape for them. An ECMA-262 engine without `u` sees each as its two
/// surrogates, and so refuses a little more than the server (never less, never a syntax
/// error: no range spans two surrogate pairs).
fn refusing_pattern(refused: impl Fn(char) -> bool) -> String {
    let mut class = String::new();
    let mut run: Option<(char, char)> = None;
    fn close(run: &mut Option<(char, char)>, class: &mut String) {
        if let Some((first, last)) = run.take() {
            class.push_str(&format!("\\u{:04X}", u32::from(first)));
            if last != first {
                class.push_str(&format!("-\\u{:04X}", u32::from(last)));
            }
        }
    }
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let bmp = u32::from(c) <= 0xFFFF;
        if !refused(c) {
            close(&mut run, &mut class);
        } else if !bmp {
            close(&mut run, &mut class);
            class.push(c);
        } else {
            run = match run {
                Some((first, last)) if u32::from(last) + 1 == u32::from(c) => Some((first, c)),
                _ => {
                    close(&mut run, &mut class);
                    Some((c, c))
                }
            };
        }
    }
    close(&mut run, &mut class);
    format!("^[^{class}]+$")
}

/// Text a store can keep: anything but NUL (messages, errors).
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// A string schema of 1 to `max_len` characters matching `pattern`.
pub fn text(pattern: &str, max_len: usize, description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(max_len))
        .examples([example])
        .into()
}

/// Gives `$ty` the string schema of [`text`]: 1 to `$max` characters matching `$pattern`.
/// For name types and for the marker types that describe plain-string wire fields.
#[macro_export]
macro_rules! text_schema_for {
    ($ty:ty, $pattern:expr, $max:expr, $description:expr, $example:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::text_schema::text($pattern, $max, $description, $example)
            }
        }

        impl utoipa::ToSchema for $ty {}
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::check_label;
    use crate::JobKind;

    /// Every character, checked alone by `accepts` and by `pattern` (through the `regex`
    /// crate, whose syntax shares `\uXXXX` and literal characters with ECMA-262 and Python).
    fn assert_pattern_is(pattern: &str, accepts: impl Fn(&str) -> bool) {
        let re = regex::Regex::new(pattern).expect("the pattern compiles");
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = c.to_string();
            assert_eq!(re.is_match(&text), accepts(&text), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn the_key_pattern_matches_exactly_what_key_validation_accepts() {
        assert_pattern_is(key_pattern(), |t| {
            crate::ordering::JobOrdering {
                lock_key: Some(t.to_string()),
                ..Default::default()
            }
            .validate()
            .is_ok()
        });
    }

    #[test]
    fn the_kind_pattern_matches_exactly_what_the_kind_parser_accepts() {
        assert_pattern_is(kind_pattern(), |t| JobKind::parse(t).is_ok());
    }

    #[test]
    fn the_visible_pattern_matches_exactly_what_check_label_accepts() {
        assert_pattern_is(visible_pattern(), |t| check_label("tag", t, 255).is_ok());
    }

    #[test]
    fn the_no_nul_pattern_refuses_only_nul() {
        assert_pattern_is(NO_NUL_PATTERN, |t| t != "\0");
    }
}
