//! JSON Schemas of the texts errand checks (names, kinds, tags), written once next to the
//! rules so the OpenAPI document refuses exactly what the parsers refuse.
//!
//! Patterns are ECMA-262 and Python `re` compatible (negated classes of `\u` escapes, no
//! length quantifiers): lengths go in `minLength`/`maxLength`, which count characters as
//! the parsers do.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

/// Characters allowed in queue and schedule names: safe in URLs, metrics labels and file
/// names.
pub const SAFE_NAME_PATTERN: &str = "^[A-Za-z0-9_.:-]+$";

/// A kind or a tag: no whitespace (Unicode `White_Space`), no control characters (`Cc`) and
/// none of the invisible format characters that would mislead a reader (zero-width spaces
/// and joiners, bidirectional marks, overrides and isolates, word joiners, the BOM).
pub const VISIBLE_LABEL_PATTERN: &str = "^[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200F\\u2028-\\u202F\\u205F-\\u2064\\u2066-\\u2069\\u3000\\uFEFF]+$";

/// Text without control characters (`Cc`): idempotency keys, worker names.
pub const NO_CONTROL_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";

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

    /// The characters `VISIBLE_LABEL_PATTERN` excludes, listed the way the rule is worded.
    fn refused(c: char) -> bool {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    }

    /// The ranges of a negated class such as `[^\u0000-\u0020\u007F]`.
    fn class_ranges(pattern: &str) -> Vec<(char, char)> {
        let body = pattern
            .trim_start_matches("^[^")
            .trim_end_matches("]+$")
            .trim_end_matches("]*$");
        let chars: Vec<char> = body
            .split("\\u")
            .filter(|s| !s.is_empty())
            .map(|s| {
                let hex = s.trim_end_matches('-');
                char::from_u32(u32::from_str_radix(hex, 16).expect("hex")).expect("char")
            })
            .collect();
        let dashes: Vec<bool> = body
            .split("\\u")
            .filter(|s| !s.is_empty())
            .map(|s| s.ends_with('-'))
            .collect();
        let mut ranges = vec![];
        let mut i = 0;
        while i < chars.len() {
            if dashes[i] {
                ranges.push((chars[i], chars[i + 1]));
                i += 2;
            } else {
                ranges.push((chars[i], chars[i]));
                i += 1;
            }
        }
        ranges
    }

    #[test]
    fn the_label_pattern_excludes_exactly_what_the_rule_refuses() {
        let ranges = class_ranges(VISIBLE_LABEL_PATTERN);
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let excluded = ranges.iter().any(|(a, b)| (*a..=*b).contains(&c));
            assert_eq!(excluded, refused(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn the_no_control_pattern_excludes_exactly_the_control_characters() {
        let ranges = class_ranges(NO_CONTROL_PATTERN);
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let excluded = ranges.iter().any(|(a, b)| (*a..=*b).contains(&c));
            assert_eq!(excluded, c.is_control(), "U+{:04X}", c as u32);
        }
    }
}
