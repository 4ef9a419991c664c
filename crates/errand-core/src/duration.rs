//! Durations as users write them: `"30s"`, `"1m 30s"`, `"250ms"`, or a number of milliseconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::ValidationError;

/// Parses a human duration such as `30s`, `5m`, `1h 30m` or `250ms`.
///
/// # Errors
/// A [`ValidationError`] naming `field` when the text is not a duration.
pub fn parse(field: &str, text: &str) -> Result<Duration, ValidationError> {
    let trimmed = text.trim();
    if let Ok(ms) = trimmed.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    if trimmed.starts_with('-') {
        return Err(ValidationError::new(
            field,
            format!("`{text}`: a duration cannot be negative"),
        ));
    }
    // The parser's own words ("expected number at 0") tell a reader nothing more.
    humantime::parse_duration(trimmed).map_err(|_| {
        ValidationError::new(
            field,
            format!("`{text}` is not a duration: write e.g. 250ms, 30s, 5m or 1h"),
        )
    })
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A duration in an API body: either a number of milliseconds or a string like `"30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlexDuration(pub Duration);

impl<'de> Deserialize<'de> for FlexDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FlexDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("milliseconds (a whole number >= 0) or a duration such as \"30s\"")
            }
            fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Self::Value, E> {
                Ok(FlexDuration(Duration::from_millis(ms)))
            }
            fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Self::Value, E> {
                u64::try_from(ms)
                    .map(|ms| FlexDuration(Duration::from_millis(ms)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, ms: f64) -> Result<Self::Value, E> {
                // JSON Schema calls `500.0` an integer; a fraction of a millisecond is refused.
                match crate::number::integral(ms).map(u64::try_from) {
                    Some(Ok(ms)) => self.visit_u64(ms),
                    Some(Err(_)) => Err(E::custom("a duration cannot be negative")),
                    None => Err(E::invalid_type(serde::de::Unexpected::Float(ms), &self)),
                }
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                parse("duration", text)
                    .map(FlexDuration)
                    .map_err(|e| E::custom(e.message))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl serde::Serialize for FlexDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(self.0))
    }
}

/// The units [`parse`] reads, as `humantime` spells them (longest first).
const UNITS: &str = "(nanos|nsec|ns|usec|us|\u{b5}s|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)";

/// A pattern for the text [`parse`] reads: plain milliseconds, or numbers (maybe with a
/// fraction) each followed by a unit. With `nonzero`, at least one number is not zero.
pub fn duration_pattern(nonzero: bool) -> String {
    let any = format!("[0-9]+(\\.[0-9]+)?\\s*{UNITS}\\s*");
    if !nonzero {
        return format!("^\\s*([0-9]+|({any})+)$");
    }
    let some = format!("(0*[1-9][0-9]*(\\.[0-9]+)?|[0-9]+\\.[0-9]*[1-9][0-9]*)\\s*{UNITS}\\s*");
    format!("^\\s*(0*[1-9][0-9]*\\s*|({any})*{some}({any})*)$")
}

impl FlexDuration {
    /// The schema of a duration of at least `min_ms` milliseconds (more than zero when
    /// `min_ms` is): a whole number of milliseconds, or text [`parse`] reads.
    pub fn schema_from(min_ms: u64) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, SchemaType, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Integer))
                    .minimum(Some(min_ms))
                    // Read as a u64: a larger number is not a duration errand can hold.
                    .maximum(Some(u64::MAX))
                    .description(Some("milliseconds")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .pattern(Some(duration_pattern(min_ms > 0)))
                    .description(Some("a duration such as 250ms, 30s, 5m, 1h 30m")),
            )
            .into()
    }
}

impl utoipa::PartialSchema for FlexDuration {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        Self::schema_from(0)
    }
}

impl utoipa::ToSchema for FlexDuration {}

/// The schema of a [`FlexDuration`] that must be positive (queue timeouts and backoffs,
/// rate periods): 0 is refused, so the document says so.
pub struct PositiveFlexDuration;

impl utoipa::PartialSchema for PositiveFlexDuration {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        FlexDuration::schema_from(1)
    }
}

impl utoipa::ToSchema for PositiveFlexDuration {}

/// Serde for a whole number of milliseconds kept as `u64` but written as a duration text
/// (`"1s"`) and read as [`FlexDuration`] reads it: rate periods, backoffs and timeouts of
/// queue settings use one form in the API, the CLI and errand.toml.
pub mod millis_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::FlexDuration;

    /// Reads milliseconds or a duration text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let f = FlexDuration::deserialize(d)?;
        u64::try_from(f.0.as_millis()).map_err(|_| serde::de::Error::custom("duration too long"))
    }

    /// Writes a duration text.
    pub fn serialize<S: Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(std::time::Duration::from_millis(*ms)))
    }
}

/// [`millis_text`] for an optional field.
pub mod opt_millis_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::FlexDuration;

    /// Reads `null`, milliseconds or a duration text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<FlexDuration>::deserialize(d)?
            .map(|f| {
                u64::try_from(f.0.as_millis())
                    .map_err(|_| serde::de::Error::custom("duration too long"))
            })
            .transpose()
    }

    /// Writes a duration text (or `null`).
    pub fn serialize<S: Serializer>(ms: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => super::millis_text::serialize(ms, s),
            None => s.serialize_none(),
        }
    }
}

/// [`millis_text`] for a patch field: absent is `None`, `null` is `Some(None)`.
pub mod patch_millis_text {
    use serde::{Deserializer, Serializer};

    /// Reads a present field (absent fields never reach here: `#[serde(default)]`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
        super::opt_millis_text::deserialize(d).map(Some)
    }

    /// Writes a present field (`None` is skipped by `skip_serializing_if`).
    pub fn serialize<S: Serializer>(v: &Option<Option<u64>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => super::opt_millis_text::serialize(inner, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_milliseconds() {
        assert_eq!(parse("d", "30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("d", "1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("d", "250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("d", "1500"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_nonsense_with_the_field_name() {
        let err = parse("wait", "soon").unwrap_err();
        assert_eq!(err.field, "wait");
        assert!(err.message.contains("soon"));
    }

    #[test]
    fn a_negative_text_says_it_is_negative() {
        let err = parse("delay", "-5s").unwrap_err();
        assert!(
            err.message.contains("cannot be negative"),
            "{}",
            err.message
        );
        let err = serde_json::from_str::<FlexDuration>("\"-5s\"").unwrap_err();
        assert!(err.to_string().contains("cannot be negative"), "{err}");
    }

    #[test]
    fn flex_duration_reads_numbers_and_strings() {
        let a: FlexDuration = serde_json::from_str("1200").unwrap();
        let b: FlexDuration = serde_json::from_str("\"2s\"").unwrap();
        assert_eq!(a.0, Duration::from_millis(1200));
        assert_eq!(b.0, Duration::from_secs(2));
        assert!(serde_json::from_str::<FlexDuration>("\"later\"").is_err());
        assert!(serde_json::from_str::<FlexDuration>("-5").is_err());
    }

    #[test]
    fn flex_duration_reads_whole_floats_and_refuses_fractions() {
        let whole: FlexDuration = serde_json::from_str("1500.0").unwrap();
        assert_eq!(whole.0, Duration::from_millis(1500));
        assert!(serde_json::from_str::<FlexDuration>("0.5").is_err());
        assert!(serde_json::from_str::<FlexDuration>("-5.0").is_err());
    }
}
