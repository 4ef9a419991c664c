//! Shipping a running attempt's log lines: what `errand worker` sends for the stdout and
//! stderr of the scripts it runs on another machine, so that their logs are readable from
//! any node like those of runs on the server.

use errand_core::{LeaseToken, LogStream, NewLogLine};
use serde::{Deserialize, Serialize};

/// Most lines one `POST /v1/jobs/{id}/logs` may carry.
pub const MAX_LOG_LINES_PER_CALL: usize = 10_000;

/// One line a run printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogLineInput {
    /// When the worker read it.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// `stdout` (stored as INFO) or `stderr` (stored as ERROR).
    pub stream: LogStream,
    /// The text, without its line ending (no NUL characters).
    #[schema(pattern = "^[^\\u0000]*$")]
    pub line: String,
}

impl From<&NewLogLine> for LogLineInput {
    fn from(line: &NewLogLine) -> Self {
        Self {
            at: errand_core::time::to_timestamp(line.at),
            stream: line.stream,
            line: line.line.clone(),
        }
    }
}

impl From<&LogLineInput> for NewLogLine {
    fn from(line: &LogLineInput) -> Self {
        Self {
            at: errand_core::time::to_millis(line.at),
            stream: line.stream,
            line: line.line.clone(),
        }
    }
}

/// `POST /v1/jobs/{id}/logs`: lines of the attempt the lease token holds, in the order
/// they were printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogAppendRequest {
    /// The attempt's lease token: lines of an attempt that lost its lease are refused
    /// (409 `lease_lost`).
    pub lease_token: LeaseToken,
    /// The attempt that printed them.
    #[schema(minimum = 1)]
    pub attempt: u32,
    /// 1 to 10,000 lines.
    #[schema(min_items = 1, max_items = 10000)]
    pub lines: Vec<LogLineInput>,
}

/// The lines were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogAppendResponse {
    /// The number of the attempt's last line now. Lines past the per-attempt bound are
    /// dropped from the middle, so this may be more than the lines kept.
    pub last_seq: u64,
}
