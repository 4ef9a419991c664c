//! Lines a hosted run printed, as they are stored per attempt and shown by the API.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Millis, ValidationError};

/// Which stream a line came from; stdout is logged as INFO and stderr as ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output: an INFO line.
    Stdout,
    /// Standard error: an ERROR line.
    Stderr,
}

impl LogStream {
    /// The name stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    /// The level the line is shown with.
    pub fn level(self) -> &'static str {
        match self {
            LogStream::Stdout => "INFO",
            LogStream::Stderr => "ERROR",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// A name no version of errand writes: the record is corrupt.
    pub fn from_stored(s: &str) -> Result<Self, ValidationError> {
        match s {
            "stdout" => Ok(LogStream::Stdout),
            "stderr" => Ok(LogStream::Stderr),
            other => Err(ValidationError::new(
                "stream",
                format!("`{other}` is not a log stream"),
            )),
        }
    }
}

/// A line a run printed, before the store numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogLine {
    /// When the line was read, milliseconds since the epoch.
    pub at: Millis,
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without its line ending (invalid UTF-8 replaced).
    pub line: String,
}

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    /// The attempt (for a continuous instance: the restart, from 1) that printed it.
    pub attempt: u32,
    /// Its number within the attempt, from 1. A gap between two numbers is lines dropped
    /// by the per-attempt bound.
    pub seq: u64,
    /// When it was read.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Where it came from.
    pub stream: LogStream,
    /// `INFO` for stdout, `ERROR` for stderr.
    pub level: String,
    /// The text.
    pub line: String,
}
