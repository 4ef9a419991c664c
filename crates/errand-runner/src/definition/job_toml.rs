//! `job.toml` as written: every key, typed only as far as TOML goes (durations, sizes and
//! names stay text here and are checked in [`super::build`], where each problem can name
//! its key). Unknown keys are refused, so a typo is a problem and not a silent default.

use std::collections::BTreeMap;
use std::fmt;

use errand_core::schedule_spec::{CatchUpPolicy, OverlapPolicy};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::Mode;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobToml {
    pub mode: Option<Mode>,
    pub kind: Option<String>,
    pub queue: Option<String>,
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub pass_env: Vec<String>,
    #[serde(default)]
    pub secret_env: Vec<String>,
    pub schedule: Option<ScheduleToml>,
    pub singleton: Option<bool>,
    pub concurrency: Option<u32>,
    pub timeout: Option<String>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<BackoffToml>,
    pub stopping_wait_time: Option<String>,
    pub restart: Option<RestartToml>,
    pub limits: Option<LimitsToml>,
    pub user: Option<String>,
    pub triggers: Option<TriggersToml>,
}

/// `schedule = "*/5 * * * *"` (a cron expression) or a `[schedule]` table.
#[derive(Debug, Default)]
pub(crate) struct ScheduleToml {
    /// Whether it was the one-line form (problems then name `schedule`, not
    /// `schedule.cron`).
    pub short: bool,
    pub table: ScheduleTable,
}

/// `[schedule]`: the fields of the schedules API, durations as text.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleTable {
    pub cron: Option<String>,
    pub every: Option<String>,
    pub timezone: Option<String>,
    pub overlap: Option<OverlapPolicy>,
    pub catch_up: Option<CatchUpPolicy>,
    pub catch_up_window: Option<String>,
    pub jitter: Option<String>,
}

impl<'de> Deserialize<'de> for ScheduleToml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScheduleVisitor;
        impl<'de> Visitor<'de> for ScheduleVisitor {
            type Value = ScheduleToml;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a cron expression such as \"*/5 * * * *\", or a table with cron or every, timezone, overlap, catch_up")
            }
            fn visit_str<E: de::Error>(self, cron: &str) -> Result<Self::Value, E> {
                Ok(ScheduleToml {
                    short: true,
                    table: ScheduleTable {
                        cron: Some(cron.to_string()),
                        ..ScheduleTable::default()
                    },
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let table = ScheduleTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ScheduleToml {
                    short: false,
                    table,
                })
            }
        }
        d.deserialize_any(ScheduleVisitor)
    }
}

/// `[backoff]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackoffToml {
    pub base: Option<String>,
    pub max: Option<String>,
}

/// `[restart]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestartToml {
    pub base: Option<String>,
    pub max: Option<String>,
    pub max_restarts: Option<u32>,
    pub window: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsToml {
    pub cpu_seconds: Option<u64>,
    pub memory: Option<ByteSizeText>,
    pub open_files: Option<u64>,
    pub processes: Option<u64>,
}

/// A size: a whole number of bytes, or text such as `"512MiB"` or `"2G"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ByteSizeText {
    Bytes(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for ByteSizeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSizeText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"512MiB\" or \"2GiB\", or a whole number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ByteSizeText::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(ByteSizeText::Bytes)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ByteSizeText::Text(v.to_string()))
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// `[triggers]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggersToml {
    #[serde(default)]
    pub watch: Vec<WatchToml>,
    #[serde(default)]
    pub hook: Vec<HookToml>,
}

/// `[[triggers.watch]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WatchToml {
    pub dir: String,
    pub glob: Option<String>,
    pub debounce: Option<String>,
}

/// `[[triggers.hook]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HookToml {
    pub name: String,
    pub secret_env: Option<String>,
}

/// Why a job.toml could not be read as one: the key at fault (when the parser knows it)
/// and what is wrong, with the line.
#[derive(Debug)]
pub(crate) struct ParseFailure {
    pub key: Option<String>,
    pub reason: String,
}

/// Parses the text of a job.toml.
pub(crate) fn parse(text: &str) -> Result<JobToml, ParseFailure> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| failure(text, None, &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = key_of(&e.path().to_string(), e.inner().message());
        failure(text, key, e.inner())
    })
}

/// The key a serde error is about: its path, and the missing field when one is missing
/// (`triggers.watch[0].dir`, not `triggers.watch[0]`).
pub(crate) fn key_of(path: &str, message: &str) -> Option<String> {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", None) => None,
        (".", Some(field)) => Some(field.to_string()),
        (path, Some(field)) => Some(format!("{path}.{field}")),
        (path, None) => Some(path.to_string()),
    }
}

fn failure(text: &str, key: Option<String>, e: &toml::de::Error) -> ParseFailure {
    let message = e.message().trim_end_matches('\n').to_string();
    let reason = match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    };
    ParseFailure { key, reason }
}
