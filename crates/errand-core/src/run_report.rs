//! What the operating system said about one finished run of a script or executable, kept
//! with the attempt so that an operator sees why it ended and what it cost.

use serde::{Deserialize, Serialize};

/// How a hosted process ended and what it used. Recorded on the attempt it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunReport {
    /// The exit code, when the process exited on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did (9 after a kill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Wall time from start to end, in milliseconds.
    pub duration_ms: u64,
    /// CPU time (user + system) of the process and the children it waited for, in
    /// milliseconds.
    pub cpu_ms: u64,
    /// Peak resident memory, in bytes.
    pub max_rss_bytes: u64,
}
