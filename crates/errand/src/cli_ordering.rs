//! Command-line arguments of ordering: job keys on enqueue, queue settings, limits and
//! sessions.

use clap::{Args, Subcommand};

/// How an enqueued job waits its turn (`errand enqueue --lock-key ...`).
#[derive(Debug, Args, Clone, Default)]
pub struct OrderingArgs {
    /// Jobs with the same lock key never run at the same time anywhere.
    #[arg(long)]
    pub lock_key: Option<String>,
    /// At most --concurrency-limit jobs with this key run at once.
    #[arg(long)]
    pub concurrency_key: Option<String>,
    /// The limit of --concurrency-key (default 1).
    #[arg(long, requires = "concurrency_key")]
    pub concurrency_limit: Option<u32>,
    /// Jobs with the same session key run one at a time in enqueue order.
    #[arg(long)]
    pub session_key: Option<String>,
    /// What the session does if this job dies: block (default) or continue.
    #[arg(long, requires = "session_key")]
    pub session_on_dead: Option<String>,
    /// The tenant: the queue's jobs are claimed round-robin across fairness keys.
    #[arg(long)]
    pub fairness_key: Option<String>,
    /// Turns per turn of a weight-1 key (default 1).
    #[arg(long, requires = "fairness_key")]
    pub fairness_weight: Option<u32>,
    /// The rate limit (`errand limits set key NAME`) this job's start counts against.
    #[arg(long)]
    pub rate_key: Option<String>,
}

/// `errand queues set QUEUE ...`: each flag given changes one setting; `none` removes it.
#[derive(Debug, Args)]
pub struct QueueSetArgs {
    /// Queue (created when missing).
    pub queue: String,
    /// At most this many running at once across nodes, or `none`.
    #[arg(long)]
    pub concurrency: Option<String>,
    /// At most this many starts per period, as `100/1s`, or `none`.
    #[arg(long)]
    pub rate: Option<String>,
    /// Starts allowed at once after a quiet spell (with --rate; default its limit).
    #[arg(long, requires = "rate")]
    pub burst: Option<u32>,
    /// Default attempts of new jobs, or `none`.
    #[arg(long)]
    pub max_attempts: Option<String>,
    /// Default priority of new jobs, or `none`.
    #[arg(long, allow_hyphen_values = true)]
    pub priority: Option<String>,
    /// Default timeout of new jobs (`30s`), or `none`.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Retry backoff of failed jobs as `BASE..MAX` (`1s..1h`), or `none`.
    #[arg(long)]
    pub backoff: Option<String>,
}

/// `errand limits ...`: concurrency and rate limits of kinds and rate keys.
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Every limit with what runs under it.
    List,
    /// Sets (replaces) a limit.
    Set {
        /// `kind` or `key` (a rate key).
        scope: String,
        /// The kind or rate key.
        name: String,
        /// At most this many running at once (kinds; 1 makes a singleton).
        #[arg(long)]
        concurrency: Option<u32>,
        /// At most this many starts per period, as `100/1s`.
        #[arg(long)]
        rate: Option<String>,
        /// Starts allowed at once (with --rate; default its limit).
        #[arg(long, requires = "rate")]
        burst: Option<u32>,
    },
    /// Removes a limit.
    Delete {
        /// `kind` or `key`.
        scope: String,
        /// The kind or rate key.
        name: String,
    },
}

/// `errand sessions ...`: ordered sessions and their state.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sessions by key.
    List {
        /// Only sessions after this key.
        #[arg(long)]
        after: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only blocked sessions.
        #[arg(long)]
        blocked: bool,
    },
    /// One session: head job, length, state and version.
    Show {
        /// Session key.
        key: String,
    },
    /// Sets a session's state if it is still at --expected-version.
    SetState {
        /// Session key.
        key: String,
        /// The state (JSON).
        state: String,
        /// The version read (0 for a new session); another version is refused.
        #[arg(long)]
        expected_version: u64,
    },
    /// Moves a session blocked behind a dead job on to its next job.
    Unblock {
        /// Session key.
        key: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        // Clap checks names only when a command is parsed; this checks every one at once
        // (a subcommand flag named `--version` clashes with the global one).
        crate::cli::Cli::command().debug_assert();
    }
}
