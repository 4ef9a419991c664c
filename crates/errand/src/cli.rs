//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand};

pub use crate::cli_flows::{BatchesCommand, WorkflowsCommand};
pub use crate::cli_ordering::{LimitsCommand, OrderingArgs, QueueSetArgs, SessionsCommand};

/// errand: a background-jobs server in one binary.
#[derive(Debug, Parser)]
#[command(name = "errand", version, about, propagate_version = true)]
pub struct Cli {
    /// Server for client commands.
    #[arg(
        long,
        global = true,
        env = "ERRAND_SERVER",
        default_value = "http://127.0.0.1:7878"
    )]
    pub server: String,
    /// API token for client commands (`Authorization: Bearer`), when the server requires
    /// one.
    #[arg(long, global = true, env = "ERRAND_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables (and errors as one JSON object on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// On an error, also print where in errand it was raised (a backtrace, for a bug report).
    #[arg(long, global = true)]
    pub debug: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Global flags only client commands use: hidden in the help of [`SERVERLESS`] commands.
const CLIENT_ONLY: [&str; 3] = ["server", "token", "json"];

/// Commands that work on a store or the local machine, not through a server's API.
const SERVERLESS: [&str; 4] = ["serve", "export", "import", "tokens"];

/// The command line as parsed, and as completions and man pages describe it: [`Cli`]'s,
/// with `--server` and `--json` left out of the help of `serve`, `export` and `import`.
/// They still parse there and change nothing (an `ERRAND_SERVER` in the environment must
/// not stop `serve`): a hidden copy in the subcommand stands in for the global flag.
pub fn command() -> clap::Command {
    let cli = Cli::command();
    let hidden: Vec<clap::Arg> = cli
        .get_arguments()
        .filter(|a| CLIENT_ONLY.contains(&a.get_id().as_str()))
        .map(|a| a.clone().hide(true))
        .collect();
    SERVERLESS.iter().fold(cli, |cli, name| {
        cli.mut_subcommand(name, |sub| {
            hidden.iter().fold(sub, |sub, arg| sub.arg(arg.clone()))
        })
    })
}

/// Whether `--json` is among the arguments (before a `--`), for a parse error, which comes
/// before there is a [`Cli`] to ask.
pub fn json_requested() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Enqueue a job.
    Enqueue(Box<EnqueueArgs>),
    /// Inspect and manage jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Inspect, pause, resume and configure queues.
    #[command(subcommand)]
    Queues(QueuesCommand),
    /// Concurrency and rate limits of kinds and rate keys.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Ordered sessions: head job, length, state.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Workers seen claiming: name, node, queues, last claim, jobs in flight.
    Workers,
    /// The dead-letter set.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Workflows: steps forming a graph, with compensation; templates.
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// Batches: many jobs enqueued as one.
    #[command(subcommand)]
    Batches(BatchesCommand),
    /// Recurring work: cron and interval schedules.
    #[command(subcommand)]
    Schedules(SchedulesCommand),
    /// Webhook subscriptions: URLs that receive job and schedule events.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Job definitions of the server's jobs directory.
    #[command(subcommand)]
    Definitions(DefinitionsCommand),
    /// Run a job definition now.
    Run(RunArgs),
    /// Print a job's log lines.
    Logs(LogsArgs),
    /// Follow job and schedule events as they happen.
    Events(EventsArgs),
    /// Run job definitions (or one command) on this machine for a server elsewhere.
    Worker(WorkerArgs),
    /// Write a store's jobs (with their attempts), queues and their settings, limits,
    /// schedules, workflow templates, subscriptions and API tokens (hashes, not secrets)
    /// as JSON lines.
    Export(ExportArgs),
    /// Load an export into a store. Jobs, subscriptions and tokens already there are kept
    /// (a job that differs is named, and the import fails); settings are written over.
    Import(ImportArgs),
    /// One screen: server, store, nodes, queues, schedules due next (`--watch` refreshes).
    Status(StatusArgs),
    /// API tokens, made and revoked in the store (so the first admin token needs no server).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The audit trail: admin and destructive actions, newest first (needs an admin token).
    Audit(AuditArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Write man pages, one per command, generated from the same definitions.
    Man(ManArgs),
    /// Internal: how the script host starts a run with resource limits or as another user.
    #[command(name = "__run-limited", hide = true)]
    RunLimited(RunLimitedArgs),
}

/// `errand status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Redraw every this long until interrupted (e.g. `2s`; with `--json`, one compact JSON
    /// object per line per frame).
    #[arg(long, num_args = 0..=1, default_missing_value = "2s")]
    pub watch: Option<String>,
}

/// `errand completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `errand man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write `errand.1` and one page per subcommand into.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
}

/// `errand __run-limited`: set limits, switch user, then become the program.
#[derive(Debug, Args)]
pub struct RunLimitedArgs {
    /// CPU seconds.
    #[arg(long)]
    pub cpu: Option<u64>,
    /// Address space in bytes.
    #[arg(long)]
    pub memory: Option<u64>,
    /// Open files.
    #[arg(long)]
    pub open_files: Option<u64>,
    /// Processes of the user.
    #[arg(long)]
    pub processes: Option<u64>,
    /// Run as this user (errand must run as root).
    #[arg(long)]
    pub user: Option<String>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// How the server and `errand worker` write their logs on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: time, level, message and fields; coloured on a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors: `timestamp`, `level`, `target`,
    /// `message` and the event's fields at the top level.
    Json,
}

/// `errand serve`. Each flag is also an `ERRAND_*` variable and an `errand.toml` key
/// (except `--log-format`, which applies before the file is read).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Log format on stderr: `human` or `json` (one object per line).
    #[arg(long, env = "ERRAND_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Address to listen on (`127.0.0.1:0` picks a free port and prints it).
    #[arg(long, env = "ERRAND_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the store is.
    #[command(flatten)]
    pub location: StoreArgs,
    /// Largest request body in bytes (default 64 MiB).
    #[arg(long, env = "ERRAND_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Largest job payload in bytes (default 1 MiB).
    #[arg(long, env = "ERRAND_MAX_PAYLOAD_BYTES")]
    pub max_payload_bytes: Option<usize>,
    /// Time for a whole request head from its first byte (default `10s`).
    #[arg(long, env = "ERRAND_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// Time for a whole request body once the server reads it (default `60s`).
    #[arg(long, env = "ERRAND_BODY_TIMEOUT")]
    pub body_timeout: Option<String>,
    /// Close a connection with no request in progress, or whose client has stopped taking
    /// an answer (errand's writes find no room), after this long (default `60s`).
    #[arg(long, env = "ERRAND_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// On SIGTERM, answer `/readyz` with 503 and keep serving this long before closing
    /// the listener, so load balancers take the node out first (default `2s`).
    #[arg(long, env = "ERRAND_SHUTDOWN_DRAIN")]
    pub shutdown_drain: Option<String>,
    /// Open client connections at most, kept below the open-files limit (default 50000).
    #[arg(long, env = "ERRAND_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections served past the cap, for health checks only (default 16).
    #[arg(long, env = "ERRAND_RESERVE_CONNECTIONS")]
    pub reserve_connections: Option<usize>,
    /// Bytes of request bodies over 64 KiB read at once, all requests together (default 128 MiB).
    #[arg(long, env = "ERRAND_BODY_BUDGET_BYTES")]
    pub body_budget_bytes: Option<usize>,
    /// Long polls waiting at once; more get 503 `busy` (default 20000).
    #[arg(long, env = "ERRAND_MAX_WAITING")]
    pub max_waiting: Option<usize>,
    /// Delete succeeded and cancelled jobs this long after they finish (default `7d`).
    #[arg(long, env = "ERRAND_RETENTION")]
    pub retention: Option<String>,
    /// Delete dead jobs this long after they die (default `30d`).
    #[arg(long, env = "ERRAND_DEAD_RETENTION")]
    pub dead_retention: Option<String>,
    /// Origins (`https://ops.example.com`) whose web pages may call the API, besides
    /// errand's own; comma-separated. Requests from other origins get 403.
    #[arg(long, env = "ERRAND_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Host names (`errand.internal` or `errand.internal:7878`) a server listening on a
    /// loopback address answers to, besides localhost, 127.0.0.1 and [::1];
    /// comma-separated. Requests naming other hosts get 421.
    #[arg(long, env = "ERRAND_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// The jobs directory: one folder per job definition (default `./jobs`).
    #[arg(long, env = "ERRAND_JOBS_DIR")]
    pub jobs_dir: Option<PathBuf>,
    /// What this node does: any of `api`, `scheduler`, `worker`, comma-separated (default
    /// all three).
    #[arg(long, env = "ERRAND_ROLES", value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Log lines kept per attempt of a run: the first and last halves (default 10000).
    #[arg(long, env = "ERRAND_MAX_LOG_LINES")]
    pub max_log_lines: Option<u32>,
    /// A webhook signing secret, `whsec_<base64 key>`; repeat for rotation (the first is the
    /// newest; every delivery is signed with each). Without one, callbacks and
    /// subscriptions are refused.
    #[arg(
        long = "webhook-secret",
        env = "ERRAND_WEBHOOK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub webhook_secrets: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first, then
    /// any intermediates); needs --tls-key.
    #[arg(long, env = "ERRAND_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, RSA or EC); needs --tls-cert.
    #[arg(long, env = "ERRAND_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require API tokens even on loopback (elsewhere they are always required).
    #[arg(long, env = "ERRAND_REQUIRE_AUTH", conflicts_with = "insecure_no_auth")]
    pub require_auth: bool,
    /// Requests a second one token may send to this node (0: no limit; default 5000).
    #[arg(long, env = "ERRAND_TOKEN_RATE")]
    pub token_rate: Option<u32>,
    /// Waiting calls and streams one token may hold on this node at once (0: no limit;
    /// default 1000).
    #[arg(long, env = "ERRAND_TOKEN_LONG_POLLS")]
    pub token_long_polls: Option<u32>,
    /// Serve without authentication on a non-loopback address: anyone who reaches the port
    /// can do anything. For a network you trust completely, or a proxy that authenticates.
    #[arg(long, env = "ERRAND_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Deliver webhooks to loopback, private, link-local and other non-public addresses.
    #[arg(
        long,
        env = "ERRAND_ALLOW_PRIVATE_CALLBACKS",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub allow_private_callbacks: Option<bool>,
    /// Non-public networks webhooks may be delivered to (CIDR, comma-separated).
    #[arg(long, env = "ERRAND_CALLBACK_ALLOW_CIDRS", value_delimiter = ',')]
    pub callback_allow_cidrs: Vec<String>,
    /// Bound on one delivery attempt (default 10s).
    #[arg(long, env = "ERRAND_DELIVERY_TIMEOUT")]
    pub delivery_timeout: Option<String>,
    /// Wait before a delivery's first retry, doubling to an hour (default 5s).
    #[arg(long, env = "ERRAND_DELIVERY_BACKOFF")]
    pub delivery_backoff: Option<String>,
    /// How long a delivery is retried, from when it was recorded (default 24h).
    #[arg(long, env = "ERRAND_DELIVERY_RETRY_FOR")]
    pub delivery_retry_for: Option<String>,
    /// Failed attempts in a row that pause a subscription (default 50).
    #[arg(long, env = "ERRAND_SUBSCRIPTION_PAUSE_AFTER")]
    pub subscription_pause_after: Option<u32>,
    /// Largest job result in bytes of JSON; a bigger one fails the job (default 1048576).
    #[arg(long, env = "ERRAND_MAX_RESULT_BYTES")]
    pub max_result_bytes: Option<usize>,
    /// Event streams (`GET /v1/events`) open at once; more get 503 `busy` (default 20000).
    #[arg(long, env = "ERRAND_MAX_EVENT_STREAMS")]
    pub max_event_streams: Option<usize>,
    /// Keep events this long for streams resuming by id (default `24h`).
    #[arg(long, env = "ERRAND_EVENT_RETENTION")]
    pub event_retention: Option<String>,
    /// Keep at most this many events, whatever their age (default 1000000).
    #[arg(long, env = "ERRAND_EVENT_RETENTION_MAX")]
    pub event_retention_max: Option<u64>,
    /// How often the event log is read for other nodes' events (default `100ms`).
    #[arg(long, env = "ERRAND_EVENT_POLL")]
    pub event_poll: Option<String>,
    /// Events the live feed holds; a stream that falls this far behind is cut off and
    /// resumes by id (default 4096).
    #[arg(long, env = "ERRAND_EVENT_BUFFER")]
    pub event_buffer: Option<usize>,
    /// How often old events are pruned (default `1m`).
    #[arg(long, env = "ERRAND_EVENT_PRUNE_INTERVAL")]
    pub event_prune_interval: Option<String>,
}

/// Where a store is; shared by `serve`, `export` and `import`. Each flag is also an
/// `ERRAND_*` variable and an `errand.toml` key.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// Data directory of the embedded store.
    #[arg(long, env = "ERRAND_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store URL: `sqlite://PATH` (default: a file in the data directory) or
    /// `postgres://user@host:port/db` to share the store between nodes.
    #[arg(long, env = "ERRAND_STORE")]
    pub store: Option<String>,
    /// PostgreSQL schema for errand's tables (default `errand`).
    #[arg(long, env = "ERRAND_PG_SCHEMA")]
    pub pg_schema: Option<String>,
    /// Configuration file (default: `errand.toml` when it exists).
    #[arg(long, env = "ERRAND_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `errand export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The store to read.
    #[command(flatten)]
    pub location: StoreArgs,
    /// File to write, readable by its owner alone (it holds the tokens' hashes and the
    /// subscriptions' URLs); standard output when absent.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Write the jobs' secret values too (without it a job's secrets are left out, and
    /// the header says so). Keep such a file as safe as the store.
    #[arg(long)]
    pub include_secrets: bool,
    /// Leave these out (comma-separated): a copy for staging need not carry
    /// production's tokens and webhooks.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub without: Vec<Leave>,
}

/// `errand import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The store to write to (made when it is not there, and said so).
    #[command(flatten)]
    pub location: StoreArgs,
    /// File to read; standard input when absent.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Skip these lines of the file (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub without: Vec<Leave>,
}

/// What `--without` leaves out of an export or an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Leave {
    /// API tokens (their hashes, and revocations).
    Tokens,
    /// Event subscriptions (outgoing webhooks).
    Subscriptions,
    /// Workflow templates.
    Templates,
}

/// `errand tokens ...`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token and print it once (errand keeps only its hash).
    Create(TokenCreateArgs),
    /// Every token: id, name, scopes, queues, created, expires, last used, revoked.
    List {
        /// The store.
        #[command(flatten)]
        location: StoreArgs,
    },
    /// Revoke a token for good (by id or name): every node refuses it within 5 seconds.
    Revoke {
        /// The token's id or name.
        token: String,
        /// The store.
        #[command(flatten)]
        location: StoreArgs,
    },
}

/// `errand tokens create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A name for people, unique among tokens not revoked (the audit trail records it).
    #[arg(long)]
    pub name: String,
    /// What it may do, comma-separated: enqueue, work, read, admin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub scopes: Vec<String>,
    /// Only these queues, comma-separated (default: every queue).
    #[arg(long, value_delimiter = ',')]
    pub queues: Vec<String>,
    /// How long it works, with a unit (`90d`, `12h`); default: until revoked.
    #[arg(long)]
    pub expires: Option<String>,
    /// The store.
    #[command(flatten)]
    pub location: StoreArgs,
}

/// `errand audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this actor (a token's name, `local`, `env-admin`, `cli`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action (an operation id such as `purge_dead_jobs`).
    #[arg(long)]
    pub action: Option<String>,
    /// Entries to show (1 to 500).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// `errand enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// Job kind (with `--file`: for the lines that name none).
    #[arg(required_unless_present = "file")]
    pub kind: Option<String>,
    /// Enqueue every line of this JSON-lines file (`-` for standard input): each an
    /// enqueue body (`{"kind": ..., "payload": ..., ...}`); KIND and the flags fill the
    /// fields a line lacks. Checked whole before anything is sent; sent in batches of 1000.
    #[arg(long, conflicts_with_all = ["wait", "idempotency_key"])]
    pub file: Option<PathBuf>,
    /// Payload: JSON text, `@file`, or `-` for standard input.
    #[arg(long, short)]
    pub payload: Option<String>,
    /// Queue.
    #[arg(long, short)]
    pub queue: Option<String>,
    /// Priority, -1000 to 1000 (higher first).
    #[arg(long)]
    pub priority: Option<i32>,
    /// Run after this long (`30s`, `5m`).
    #[arg(long)]
    pub delay: Option<String>,
    /// Run at this instant (RFC 3339).
    #[arg(long, conflicts_with = "delay")]
    pub run_at: Option<String>,
    /// Attempts before the job is dead.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Longest one attempt may run (`5m`).
    #[arg(long)]
    pub timeout: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Idempotency key.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// A queue that gets one `errand.reply` message when the job ends (request-reply).
    #[arg(long)]
    pub reply_to: Option<String>,
    /// Copied into the reply, the callback and the job's events.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// A URL POSTed (signed) when the job ends; the server needs a webhook secret.
    #[arg(long)]
    pub callback_url: Option<String>,
    /// Wait until the job ends and print it.
    #[arg(long)]
    pub wait: bool,
    /// Run only after this job succeeded (repeatable; with `--after-any-end`, after it
    /// ended at all): the job waits as `blocked` until then.
    #[arg(long = "after")]
    pub after: Vec<String>,
    /// Any end of the `--after` jobs releases this one, not only success.
    #[arg(long)]
    pub after_any_end: bool,
    /// Lock, concurrency or session key, fairness and rate key.
    #[command(flatten)]
    pub ordering: OrderingArgs,
}

/// Filters shared by job listings.
#[derive(Debug, Args, Clone)]
pub struct ListArgs {
    /// Only this queue.
    #[arg(long, short)]
    pub queue: Option<String>,
    /// Only this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Page size.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Cursor from a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

/// `errand jobs ...`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Filters.
        #[command(flatten)]
        filter: ListArgs,
        /// Only this state.
        #[arg(long, short)]
        state: Option<String>,
    },
    /// Show one job.
    Show {
        /// Job id.
        id: String,
    },
    /// Why a job has not started, now (words; `--json` for the reasons as data).
    Explain {
        /// Job id.
        id: String,
    },
    /// Wait until a job ends; exits non-zero unless it succeeded.
    Wait {
        /// Job id.
        id: String,
        /// Give up after this long: a number with a unit (`30s`, `5m`, `1h`; a bare number
        /// is refused).
        #[arg(long, default_value = "1h")]
        timeout: String,
    },
    /// Cancel a job.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Run a dead, cancelled or waiting job again now.
    Retry {
        /// Job id.
        id: String,
    },
    /// A job's attempts.
    Attempts {
        /// Job id.
        id: String,
    },
    /// A job's webhook deliveries (its callback, and subscription deliveries of its
    /// events) with their attempts.
    Deliveries {
        /// Job id.
        id: String,
    },
}

/// `errand queues ...`.
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Every queue with its counts.
    List,
    /// Stop handing out a queue's jobs.
    Pause {
        /// Queue.
        queue: String,
    },
    /// Hand out a queue's jobs again.
    Resume {
        /// Queue.
        queue: String,
    },
    /// Change a queue's concurrency, rate and defaults for new jobs.
    Set(QueueSetArgs),
}

/// Which dead jobs.
#[derive(Debug, Args)]
pub struct DeadSelectArgs {
    /// Only this queue.
    #[arg(long, short)]
    pub queue: Option<String>,
    /// Only these jobs (repeatable).
    #[arg(long = "id")]
    pub ids: Vec<String>,
    /// Every dead job.
    #[arg(long)]
    pub all: bool,
}

/// `errand dead ...`.
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List dead jobs.
    List {
        /// Filters.
        #[command(flatten)]
        filter: ListArgs,
    },
    /// Run dead jobs again.
    Requeue(DeadSelectArgs),
    /// Delete dead jobs.
    Purge(DeadSelectArgs),
}

/// `errand schedules ...`.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule with its next and last fire.
    List,
    /// One schedule.
    Show {
        /// Schedule name.
        name: String,
    },
    /// Create a schedule.
    Add(ScheduleAddArgs),
    /// Delete a schedule (the jobs it fired stay).
    Rm {
        /// Schedule name.
        name: String,
    },
    /// Stop firing.
    Pause {
        /// Schedule name.
        name: String,
    },
    /// Fire again.
    Resume {
        /// Schedule name.
        name: String,
    },
    /// Run the schedule's job now.
    Trigger {
        /// Schedule name.
        name: String,
    },
    /// The next fire times.
    Next {
        /// Schedule name.
        name: String,
        /// How many.
        #[arg(long, short, default_value_t = 10)]
        count: usize,
    },
}

/// `errand subscriptions ...`.
#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Every subscription.
    List,
    /// Create a subscription.
    Create(SubscriptionCreateArgs),
    /// One subscription, with why it is paused.
    Show {
        /// Subscription id.
        id: String,
    },
    /// Stop delivering (matching events are not recorded meanwhile).
    Pause {
        /// Subscription id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deliver again; clears the failure count.
    Resume {
        /// Subscription id.
        id: String,
    },
    /// Delete a subscription and its pending deliveries.
    Delete {
        /// Subscription id.
        id: String,
    },
    /// A subscription's deliveries, newest first, with their attempts.
    Deliveries {
        /// Subscription id.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// `errand subscriptions create`.
#[derive(Debug, Args)]
pub struct SubscriptionCreateArgs {
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Event types: job.enqueued, job.started, job.progress, job.succeeded, job.failed,
    /// job.dead, job.cancelled, schedule.fired (repeat, or comma-separated).
    #[arg(long = "event", required = true, value_delimiter = ',', num_args = 1..)]
    pub events: Vec<String>,
    /// Only jobs of this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only jobs of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only jobs with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Free text for people.
    #[arg(long)]
    pub description: Option<String>,
}

/// `errand schedules add`: exactly one of `--cron` and `--every`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("trigger").required(true).args(["cron", "every"])))]
pub struct ScheduleAddArgs {
    /// Schedule name.
    pub name: String,
    /// Job kind to enqueue at each slot.
    #[arg(long)]
    pub kind: String,
    /// Cron expression (5 or 6 fields, or @hourly/@daily/...); or give `--every`.
    #[arg(long)]
    pub cron: Option<String>,
    /// Interval instead of cron (`30s`, `5m`).
    #[arg(long)]
    pub every: Option<String>,
    /// IANA time zone of the cron expression.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// Queue of the jobs.
    #[arg(long, short)]
    pub queue: Option<String>,
    /// Payload of the jobs (JSON).
    #[arg(long, short)]
    pub payload: Option<String>,
    /// When the previous run has not ended: allow, skip, buffer_one, replace.
    #[arg(long)]
    pub overlap: Option<String>,
    /// Slots missed while down or paused: skip, once, all.
    #[arg(long)]
    pub catch_up: Option<String>,
    /// Never two of its jobs running at once, anywhere (lock key `schedule:<name>`).
    #[arg(long)]
    pub singleton: bool,
}

/// `errand definitions ...`.
#[derive(Debug, Subcommand)]
pub enum DefinitionsCommand {
    /// Every definition, and every folder that did not load with why.
    List,
    /// One definition and its continuous instances.
    Show {
        /// Definition name.
        name: String,
    },
    /// Stop a continuous definition's instances on every node.
    Stop {
        /// Definition name.
        name: String,
    },
    /// Start a stopped (or failed) continuous definition again.
    Start {
        /// Definition name.
        name: String,
    },
}

/// `errand run NAME`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Definition name.
    pub name: String,
    /// The run's input (JSON), given to it on stdin.
    #[arg(long, short)]
    pub payload: Option<String>,
    /// Deduplicates the run.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait until the job ends and print it.
    #[arg(long)]
    pub wait: bool,
    /// Stream the run's log lines to the terminal, then print the job.
    #[arg(long)]
    pub follow: bool,
}

/// `errand logs JOB`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Job id.
    pub job: String,
    /// Only this attempt (with `--follow`: the one followed).
    #[arg(long)]
    pub attempt: Option<u32>,
    /// Keep printing lines as they come until the attempt ends. If the connection breaks
    /// mid-stream (for instance the server let go of output left unread, as in a paused
    /// pager, or restarted), it reconnects and goes on after the last line shown; after
    /// four breaks or refused reconnects in a row with no new line (1, 2, then 4 s apart)
    /// it gives up with an error.
    #[arg(long, short)]
    pub follow: bool,
}

/// `errand events`. Each filter may be repeated or comma-separated.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of jobs in these queues.
    #[arg(long, short)]
    pub queue: Vec<String>,
    /// Only events of jobs of these kinds.
    #[arg(long, short)]
    pub kind: Vec<String>,
    /// Only events of these jobs.
    #[arg(long)]
    pub job: Vec<String>,
    /// Only events of jobs carrying any of these tags.
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only these event types (`job.succeeded`, `job.progress`, ...).
    #[arg(long = "type")]
    pub event_type: Vec<String>,
    /// Start after this event id (default: now, no history).
    #[arg(long)]
    pub after: Option<String>,
}

/// `errand worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Log format on stderr: `human` or `json` (one object per line).
    #[arg(long, env = "ERRAND_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// The jobs directory whose definitions this worker runs (default `./jobs`).
    #[arg(long, env = "ERRAND_JOBS_DIR")]
    pub jobs_dir: Option<PathBuf>,
    /// With a command: the queue whose jobs (of any kind) it runs.
    #[arg(long, short)]
    pub queue: Option<String>,
    /// With a command: runs at once (default 1).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// The command each job runs (payload on stdin), after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}
