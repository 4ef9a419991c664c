//! Input errors in the API's words, not Rust's: serde names the Rust type it wanted
//! (`expected i32`, `expected struct EnqueueRequest`, `expected a sequence`), and a caller
//! writing JSON or a query string knows integers with their range, arrays and objects.
//! Only serde's own words change: what a message quotes of the caller's input (`"..."` and
//! `` `...` `` spans) is left as sent.

/// Rust type names serde may print after `expected `, and what a JSON caller calls them.
/// (The field's own bounds, such as a priority's, are checked after and said then.)
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

/// serde's names for JSON values, and JSON's own.
const VALUE_WORDS: &[(&str, &str)] = &[
    ("invalid type: sequence", "invalid type: array"),
    ("invalid type: map", "invalid type: object"),
    ("expected a sequence", "expected an array"),
    ("expected a map", "expected a JSON object"),
];

/// Parser messages of the standard library for numbers in a query string or a path.
const NUMBER_WORDS: &[(&str, &str)] = &[
    (
        "invalid digit found in string",
        "not a whole number of 0 or more",
    ),
    (
        "cannot parse integer from empty string",
        "empty, where a whole number belongs",
    ),
    ("number too large to fit in target type", "too large"),
    ("number too small to fit in target type", "too small"),
];

/// `message` (a serde or number-parsing error about a caller's input) with Rust's and
/// serde's words replaced by the API's, outside what it quotes: the server's answers and
/// the CLI's checks of a file say the same.
pub fn plain(message: &str) -> String {
    let message = message
        .strip_prefix("Failed to deserialize query string: ")
        .map_or_else(|| message.to_string(), |rest| format!("query: {rest}"));
    let message = out_of_range(&message);
    let mut out = String::with_capacity(message.len());
    for (text, quoted) in spans(&message) {
        if quoted {
            out.push_str(text);
        } else {
            out.push_str(&plain_span(text));
        }
    }
    out
}

/// A number too large (or negative) for its field is said so, not by the Rust type it did
/// not fit: `invalid value: integer `N`, expected i32` becomes `integer `N` is out of
/// range` (the field's own bounds, such as a priority's, are said when the number fits).
fn out_of_range(message: &str) -> String {
    const HEAD: &str = "invalid value: integer `";
    let Some(start) = message.find(HEAD) else {
        return message.to_string();
    };
    let number_at = start + HEAD.len();
    let Some(close) = message[number_at..].find('`') else {
        return message.to_string();
    };
    let after_number = number_at + close + 1;
    let Some(wanted) = message[after_number..].strip_prefix(", expected ") else {
        return message.to_string();
    };
    let end = wanted
        .find(|c: char| !c.is_alphanumeric())
        .unwrap_or(wanted.len());
    let integer = TYPE_WORDS
        .iter()
        .any(|(rust, _)| *rust == &wanted[..end] && !rust.starts_with('f'));
    if !integer {
        return message.to_string();
    }
    format!(
        "{}integer `{}` is out of range{}",
        &message[..start],
        &message[number_at..number_at + close],
        &wanted[end..]
    )
}

/// The message cut into pieces, each with whether it lies inside a quote (`"..."` or
/// `` `...` ``, the quote characters included; `\"` inside a `"..."` does not end it, as
/// serde writes a string's own quotes so). An unclosed quote runs to the end.
fn spans(message: &str) -> Vec<(&str, bool)> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut open: Option<char> = None;
    let mut escaped = false;
    for (i, c) in message.char_indices() {
        match open {
            None if c == '"' || c == '`' => {
                spans.push((&message[start..i], false));
                start = i;
                open = Some(c);
            }
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => {
                let end = i + c.len_utf8();
                spans.push((&message[start..end], true));
                start = end;
                open = None;
            }
            _ => {}
        }
    }
    spans.push((&message[start..], open.is_some()));
    spans
}

/// One unquoted piece in the API's words.
fn plain_span(text: &str) -> String {
    let mut text = text.to_string();
    for (rust, json) in VALUE_WORDS.iter().chain(NUMBER_WORDS) {
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
            "max: integer `-1` is out of range"
        );
        assert_eq!(
            plain("priority: invalid value: integer `3000000000`, expected i32 at line 1 column 9"),
            "priority: integer `3000000000` is out of range at line 1 column 9"
        );
        assert_eq!(
            plain("invalid type: sequence, expected struct EnqueueRequest at line 1 column 0"),
            "invalid type: array, expected a JSON object at line 1 column 0"
        );
        assert_eq!(
            plain("tags: invalid type: string \"x\", expected a sequence"),
            "tags: invalid type: string \"x\", expected an array"
        );
        assert_eq!(
            plain("secrets: invalid type: sequence, expected a map"),
            "secrets: invalid type: array, expected a JSON object"
        );
        assert_eq!(
            plain("Failed to deserialize query string: limit: invalid digit found in string"),
            "query: limit: not a whole number of 0 or more"
        );
        // Words that only start like a type name stay.
        assert_eq!(plain("expected u32x or i8"), "expected u32x or i8");
        assert_eq!(plain("expected a duration"), "expected a duration");
    }

    #[test]
    fn what_a_message_quotes_of_the_input_is_left_as_sent() {
        assert_eq!(
            plain("priority: invalid type: string \"expected u8\", expected i8"),
            "priority: invalid type: string \"expected u8\", expected an integer"
        );
        assert_eq!(
            plain("unknown variant `invalid type: sequence`, expected one of `a`, `b`"),
            "unknown variant `invalid type: sequence`, expected one of `a`, `b`"
        );
        // An unclosed quote keeps the rest as it is; an escaped quote does not close one.
        assert_eq!(plain("bad \"expected u8"), "bad \"expected u8");
        assert_eq!(
            plain(r#"string "a\" expected u8", expected u8"#),
            r#"string "a\" expected u8", expected a whole number (0 or more)"#
        );
    }
}
