//! Input errors in the API's words, not Rust's: serde names the Rust type it wanted
//! (`expected i32`, `expected struct EnqueueRequest`), and a caller writing JSON or a query
//! string knows integers, numbers and objects.

/// Rust type names serde may print after `expected `, and what a JSON caller calls them.
const TYPE_WORDS: &[(&str, &str)] = &[
    ("i8", "an integer"),
    ("i16", "an integer"),
    ("i32", "an integer"),
    ("i64", "an integer"),
    ("isize", "an integer"),
    ("u8", "a whole number (0 or more)"),
    ("u16", "a whole number (0 or more)"),
    ("u32", "a whole number (0 or more)"),
    ("u64", "a whole number (0 or more)"),
    ("usize", "a whole number (0 or more)"),
    ("f32", "a number"),
    ("f64", "a number"),
];

/// What serde calls a JSON value it did not expect, and JSON's own name for it.
const FOUND_WORDS: &[(&str, &str)] = &[
    ("invalid type: sequence", "invalid type: array"),
    ("invalid type: map", "invalid type: object"),
];

/// Parser messages of the standard library for numbers in a query string or a path.
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("invalid digit found in string", "not a whole number"),
    (
        "cannot parse integer from empty string",
        "empty, where a whole number belongs",
    ),
    ("number too large to fit in target type", "too large"),
    ("number too small to fit in target type", "too small"),
];

/// `message` with Rust's type names replaced by the API's words.
pub(crate) fn plain(message: &str) -> String {
    let mut text = message
        .strip_prefix("Failed to deserialize query string: ")
        .map_or_else(|| message.to_string(), |rest| format!("query: {rest}"));
    for (rust, json) in FOUND_WORDS.iter().chain(NUMBER_WORDS) {
        text = text.replace(rust, json);
    }
    replace_expected(&text)
}

/// Replaces `expected <rust type>` (`struct X` included) with what a JSON caller calls it.
fn replace_expected(text: &str) -> String {
    const EXPECTED: &str = "expected ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(EXPECTED) {
        let (before, after) = rest.split_at(at + EXPECTED.len());
        out.push_str(before);
        rest = after;
        if let Some(name) = rest.strip_prefix("struct ") {
            let end = name
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .unwrap_or(name.len());
            out.push_str("a JSON object");
            rest = &name[end..];
            continue;
        }
        let end = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        if let Some((_, words)) = TYPE_WORDS.iter().find(|(rust, _)| *rust == &rest[..end]) {
            out.push_str(words);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn rust_type_names_become_json_words() {
        assert_eq!(
            plain("priority: invalid type: string \"high\", expected i32 at line 1 column 30"),
            "priority: invalid type: string \"high\", expected an integer at line 1 column 30"
        );
        assert_eq!(
            plain("max: invalid value: integer `-1`, expected u32"),
            "max: invalid value: integer `-1`, expected a whole number (0 or more)"
        );
        assert_eq!(
            plain("invalid type: sequence, expected struct EnqueueRequest at line 1 column 0"),
            "invalid type: array, expected a JSON object at line 1 column 0"
        );
        assert_eq!(
            plain("Failed to deserialize query string: limit: invalid digit found in string"),
            "query: limit: not a whole number"
        );
        // Words that only start like a type name stay.
        assert_eq!(plain("expected u32x or i8"), "expected u32x or i8");
        assert_eq!(plain("expected a duration"), "expected a duration");
    }
}
