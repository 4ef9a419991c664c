//! How the runner behaves on one node; the defaults suit most deployments.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of one node's runner.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The worker name claims carry (`<host>:<pid>` or a node id): who ran an attempt.
    pub worker: String,
    /// The errand binary, started as `errand __run-limited` in front of a run that has
    /// resource limits or a user. Without it such runs fail to start, saying why.
    pub limits_helper: Option<PathBuf>,
    /// Longer lines are split.
    pub max_line_bytes: usize,
    /// How often a running attempt renews its lease (and sends pending progress).
    pub heartbeat_interval: Duration,
    /// Progress is sent at most this long after it was reported.
    pub progress_delay: Duration,
    /// How long one claim waits for work.
    pub claim_wait: Duration,
    /// Log lines are shipped at least this often while a run prints.
    pub log_flush_interval: Duration,
    /// ... or as soon as this many are waiting.
    pub log_flush_lines: usize,
    /// errand's own environment, read once at start: `PATH`, `HOME` and `LANG` reach every
    /// run, and names a definition lists in `pass_env`; nothing else does.
    pub server_env: BTreeMap<String, String>,
    /// How long a singleton's cluster lease lasts without renewal: how soon another node
    /// takes over when this one dies.
    pub singleton_lease: Duration,
}

impl RunnerConfig {
    /// The defaults, with this process's environment.
    pub fn new(worker: String) -> Self {
        Self {
            worker,
            limits_helper: std::env::current_exe().ok(),
            max_line_bytes: 16 * 1024,
            heartbeat_interval: Duration::from_secs(10),
            progress_delay: Duration::from_millis(500),
            claim_wait: Duration::from_secs(30),
            log_flush_interval: Duration::from_millis(200),
            log_flush_lines: 1_000,
            // Variables whose name or value is not UTF-8 cannot be passed on by name; they
            // are left out rather than stopping errand.
            server_env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            singleton_lease: Duration::from_secs(10),
        }
    }
}
