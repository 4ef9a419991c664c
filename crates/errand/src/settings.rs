//! Server settings: flags and `ERRAND_*` variables override `errand.toml`, which overrides
//! the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::cli::{ServeArgs, StoreArgs};

/// `errand.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    pg_schema: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    retention: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    dead_retention: Option<String>,
    max_payload_bytes: Option<usize>,
    max_request_bytes: Option<usize>,
    #[serde(default, deserialize_with = "duration_text")]
    header_timeout: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    body_timeout: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    idle_timeout: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    shutdown_drain: Option<String>,
    max_connections: Option<usize>,
    reserve_connections: Option<usize>,
    body_budget_bytes: Option<usize>,
    max_waiting: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    jobs_dir: Option<PathBuf>,
    roles: Option<Vec<String>>,
    max_log_lines: Option<u32>,
    #[serde(default)]
    webhook_secrets: Vec<String>,
    allow_private_callbacks: Option<bool>,
    #[serde(default)]
    callback_allow_cidrs: Vec<String>,
    #[serde(default, deserialize_with = "duration_text")]
    delivery_timeout: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    delivery_backoff: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    delivery_retry_for: Option<String>,
    subscription_pause_after: Option<u32>,
    max_result_bytes: Option<usize>,
    max_event_streams: Option<usize>,
    #[serde(default, deserialize_with = "duration_text")]
    event_retention: Option<String>,
    event_retention_max: Option<u64>,
    #[serde(default, deserialize_with = "duration_text")]
    event_poll: Option<String>,
    event_buffer: Option<usize>,
    #[serde(default, deserialize_with = "duration_text")]
    event_prune_interval: Option<String>,
    /// Declared schedules: created or updated at start.
    #[serde(default)]
    schedules: Vec<errand_api::ScheduleRequest>,
    /// Declared queue settings: put in place at start.
    #[serde(default)]
    queues: Vec<crate::declared::QueueDeclaration>,
    /// Declared kind and rate-key limits: put in place at start.
    #[serde(default)]
    limits: Vec<crate::declared::LimitDeclaration>,
    /// Declared workflow templates: put in place at start.
    #[serde(default)]
    workflows: Vec<crate::declared::WorkflowDeclaration>,
    /// How often the workflow supervisor looks for steps past their deadline.
    #[serde(default, deserialize_with = "duration_text")]
    workflow_supervise_interval: Option<String>,
}

/// A duration in `errand.toml`: text with its unit. A bare number is refused with a hint,
/// since on a flag the same number means milliseconds and in the file it would be a guess.
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration with its unit, such as \"5s\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v.trim().parse::<u64>() {
                Ok(n) => Err(E::custom(format!(
                    "`\"{n}\"` has no unit: write it with one: \"{n}s\", \"{n}m\", \"{n}h\" or \"{n}d\""
                ))),
                Err(_) => Ok(Some(v.to_string())),
            }
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(E::custom(format!(
                "`{v}` has no unit: write it as text with one: \"{v}s\", \"{v}m\", \"{v}h\" or \"{v}d\""
            )))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(E::custom(format!(
                "`{v}` has no unit: write it as text with one, such as \"{v}s\" or \"{v}m\""
            )))
        }
    }
    d.deserialize_any(Text)
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (URL) and the schema errand's tables live in.
    Postgres {
        /// `postgres://...`.
        url: String,
        /// Schema name.
        schema: String,
    },
}

/// Resolved server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration file read, if any.
    pub config: Option<PathBuf>,
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Store.
    pub store: StoreLocation,
    /// Request limits.
    pub limits: errand_server::ServerLimits,
    /// Connection, timeout and body-memory limits of the HTTP edge.
    pub edge: errand_server::edge::EdgeLimits,
    /// On SIGTERM: how long the node answers `/readyz` with 503 and keeps serving before it
    /// closes its listener.
    pub shutdown_drain: std::time::Duration,
    /// Engine settings (retention).
    pub engine: errand_engine::EngineConfig,
    /// Schedules declared in the configuration file.
    pub schedules: Vec<errand_api::ScheduleRequest>,
    /// Queue settings declared in the configuration file.
    pub queues: Vec<crate::declared::DeclaredQueue>,
    /// Kind and rate-key limits declared in the configuration file.
    pub declared_limits: Vec<errand_core::throttle::Limit>,
    /// Workflow templates declared in the configuration file.
    pub workflows: Vec<crate::declared::DeclaredWorkflow>,
    /// Which hosts and origins the server answers.
    pub site: errand_server::SitePolicy,
    /// The jobs directory.
    pub jobs_dir: PathBuf,
    /// What this node does.
    pub roles: Roles,
    /// Log lines kept per attempt (half from its start, half from its end).
    pub max_log_lines: u32,
    /// Outgoing webhooks: signing keys, address policy, timeouts and retries.
    pub webhooks: errand_webhooks::WebhookSettings,
    /// How callers authenticate.
    pub auth: AuthMode,
    /// HTTPS: the certificate chain and key files (PEM); `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// The PEM files HTTPS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, RSA or EC).
    pub key: PathBuf,
}

/// Whether the server asks for tokens, and why.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Off: errand listens on loopback only.
    Loopback,
    /// Off on a network address, because `--insecure-no-auth` said so.
    Insecure,
    /// Tokens required (any non-loopback address, or `--require-auth`).
    Required(errand_server::AuthConfig),
}

/// What a node does (`--roles api,scheduler,worker`; default all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves the HTTP API (without it: `/healthz` and `/readyz` only).
    pub api: bool,
    /// Fires schedules (its own and those of job definitions).
    pub scheduler: bool,
    /// Runs job definitions: triggered runs, continuous instances, watched directories.
    pub worker: bool,
}

impl Roles {
    /// Every role.
    pub const ALL: Roles = Roles {
        api: true,
        scheduler: true,
        worker: true,
    };

    /// Reads a list of role names.
    ///
    /// # Errors
    /// An unknown or missing role name.
    pub fn parse(names: &[String]) -> anyhow::Result<Self> {
        let mut roles = Roles {
            api: false,
            scheduler: false,
            worker: false,
        };
        for name in names.iter().map(|n| n.trim()) {
            match name {
                "api" => roles.api = true,
                "scheduler" => roles.scheduler = true,
                "worker" => roles.worker = true,
                "all" => roles = Roles::ALL,
                other => anyhow::bail!(
                    "roles: unknown role `{other}`; use any of api, scheduler, worker (or all)"
                ),
            }
        }
        if roles
            == (Roles {
                api: false,
                scheduler: false,
                worker: false,
            })
        {
            anyhow::bail!("roles: name at least one of api, scheduler, worker");
        }
        Ok(roles)
    }
}

/// The flag's (or variable's) list when it names any, else the file's.
fn list_setting(flag: &[String], file: Vec<String>) -> Vec<String> {
    if flag.is_empty() {
        file
    } else {
        flag.to_vec()
    }
}

fn duration_setting(
    name: &str,
    value: Option<String>,
) -> anyhow::Result<Option<std::time::Duration>> {
    value
        .map(|v| errand_core::duration::parse(name, &v).map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()
}

fn parse_store(url: &str, data_dir: &Path, schema: &str) -> anyhow::Result<StoreLocation> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = PathBuf::from(path);
        return Ok(StoreLocation::Sqlite(if path.is_relative() {
            data_dir.join(path)
        } else {
            path
        }));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(StoreLocation::Postgres {
            url: url.to_string(),
            schema: schema.to_string(),
        });
    }
    anyhow::bail!("unknown store URL `{url}`: use sqlite://PATH or postgres://...")
}

/// Reads `errand.toml` (or the file the flags name), or nothing when there is none; says
/// which file it read.
fn load_file(args: &StoreArgs) -> anyhow::Result<(FileSettings, Option<PathBuf>)> {
    let path = match &args.config {
        Some(path) => Some(path.clone()),
        None if Path::new("errand.toml").exists() => Some(PathBuf::from("errand.toml")),
        None => None,
    };
    Ok(match path {
        Some(path) => (read_file(&path)?, Some(path)),
        None => (FileSettings::default(), None),
    })
}

/// Where the store is, from flags, environment, the configuration file and defaults.
fn resolve_store(
    args: &StoreArgs,
    file: &FileSettings,
) -> anyhow::Result<(PathBuf, StoreLocation)> {
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./errand-data"));
    let schema = args
        .pg_schema
        .clone()
        .or_else(|| file.pg_schema.clone())
        .unwrap_or_else(|| "errand".into());
    let store = match args.store.clone().or_else(|| file.store.clone()) {
        Some(url) => parse_store(&url, &data_dir, &schema)?,
        None => StoreLocation::Sqlite(data_dir.join("errand.sqlite3")),
    };
    Ok((data_dir, store))
}

/// The store named by `args` (for `export` and `import`).
///
/// # Errors
/// An unreadable configuration file or a bad store URL.
pub fn store_location(args: &StoreArgs) -> anyhow::Result<(PathBuf, StoreLocation)> {
    resolve_store(args, &load_file(args)?.0)
}

/// The event tail's poll on SQLite when `event_poll` is not set.
const SQLITE_EVENT_POLL: std::time::Duration = std::time::Duration::from_secs(1);

impl Settings {
    /// Merges flags, environment, the configuration file and defaults.
    ///
    /// # Errors
    /// An unreadable or invalid configuration file, or a bad store URL.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let (file, config) = load_file(&args.location)?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878)));
        let (data_dir, store) = resolve_store(&args.location, &file)?;
        let mut engine = errand_engine::EngineConfig::default();
        if let Some(d) = duration_setting(
            "retention",
            args.retention.clone().or(file.retention.clone()),
        )? {
            engine.retention = d;
        }
        if let Some(d) = duration_setting(
            "dead_retention",
            args.dead_retention.clone().or(file.dead_retention.clone()),
        )? {
            engine.dead_retention = d;
        }
        if let Some(d) = duration_setting(
            "event_retention",
            args.event_retention
                .clone()
                .or(file.event_retention.clone()),
        )? {
            engine.event_retention = d;
        }
        if let Some(d) = duration_setting(
            "event_poll",
            args.event_poll.clone().or(file.event_poll.clone()),
        )? {
            if d < std::time::Duration::from_millis(10) {
                anyhow::bail!("event_poll must be at least 10ms (on a flag or an ERRAND_* variable a bare number is milliseconds)");
            }
            engine.event_poll = d;
        } else if matches!(store, StoreLocation::Sqlite(_)) {
            // Every write to an SQLite store is this node's own and wakes the event tail at
            // once; the poll only catches another process writing the same file.
            engine.event_poll = SQLITE_EVENT_POLL;
        }
        if let Some(d) = duration_setting(
            "event_prune_interval",
            args.event_prune_interval
                .clone()
                .or(file.event_prune_interval.clone()),
        )? {
            if d < std::time::Duration::from_millis(100) {
                anyhow::bail!("event_prune_interval must be at least 100ms");
            }
            engine.event_prune_interval = d;
        }
        if let Some(d) = duration_setting(
            "workflow_supervise_interval",
            file.workflow_supervise_interval.clone(),
        )? {
            if d < std::time::Duration::from_millis(10) {
                anyhow::bail!("workflow_supervise_interval must be at least 10ms");
            }
            engine.supervise_interval = d;
        }
        engine.event_buffer = pick(args.event_buffer, file.event_buffer, engine.event_buffer);
        engine.event_retention_max = pick(
            args.event_retention_max,
            file.event_retention_max,
            engine.event_retention_max,
        );
        engine.max_result_bytes = pick(
            args.max_result_bytes,
            file.max_result_bytes,
            engine.max_result_bytes,
        );
        let defaults = errand_server::ServerLimits::default();
        let limits = errand_server::ServerLimits {
            max_payload_bytes: pick(
                args.max_payload_bytes,
                file.max_payload_bytes,
                defaults.max_payload_bytes,
            ),
            max_request_bytes: pick(
                args.max_request_bytes,
                file.max_request_bytes,
                defaults.max_request_bytes,
            ),
            max_waiting: pick(args.max_waiting, file.max_waiting, defaults.max_waiting),
            max_event_streams: pick(
                args.max_event_streams,
                file.max_event_streams,
                defaults.max_event_streams,
            ),
        };
        if engine.max_result_bytes == 0
            || engine.event_retention_max == 0
            || engine.event_buffer == 0
        {
            anyhow::bail!(
                "max_result_bytes, event_retention_max and event_buffer must be at least 1: with 0 the server could keep no result or no event"
            );
        }
        let edge = edge_limits(args, &file, limits.max_request_bytes)?;
        let webhooks = webhook_settings(args, &file)?;
        refuse_useless_limits(&limits, &edge)?;
        // The secrets are checked whatever the mode, with every other setting and before
        // anything is created: a weak one set for later is refused now, not on the day
        // the node moves off loopback.
        let env_admin = std::env::var("ERRAND_ADMIN_TOKEN").ok();
        let checked_admin = errand_server::AuthConfig::on(env_admin.as_deref())?;
        errand_server::session_secret_from_env(
            std::env::var("ERRAND_SESSION_SECRET").ok().as_deref(),
        )?;
        let auth = if args.insecure_no_auth {
            AuthMode::Insecure
        } else if args.require_auth || !listen.ip().is_loopback() {
            let mut config = checked_admin;
            if let Some(rate) = args.token_rate {
                config.token_rate = rate;
            }
            if let Some(polls) = args.token_long_polls {
                config.token_long_polls = polls;
            }
            AuthMode::Required(config)
        } else {
            AuthMode::Loopback
        };
        let site = errand_server::SitePolicy::new(
            &list_setting(&args.allowed_origins, file.allowed_origins),
            &list_setting(&args.allowed_hosts, file.allowed_hosts),
            listen.ip().is_loopback(),
        )?;
        let roles = match (args.roles.is_empty(), &file.roles) {
            (false, _) => Roles::parse(&args.roles)?,
            (true, Some(r)) => Roles::parse(r)?,
            (true, None) => Roles::ALL,
        };
        let shutdown_drain = duration_setting(
            "shutdown_drain",
            args.shutdown_drain.clone().or(file.shutdown_drain.clone()),
        )?
        .unwrap_or(DEFAULT_SHUTDOWN_DRAIN);
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert.clone()),
            args.tls_key.clone().or(file.tls_key.clone()),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!(
                "tls_cert is set and tls_key is not: HTTPS needs both (--tls-cert and --tls-key, or both keys in the configuration file)"
            ),
            (None, Some(_)) => anyhow::bail!(
                "tls_key is set and tls_cert is not: HTTPS needs both (--tls-cert and --tls-key, or both keys in the configuration file)"
            ),
        };
        let max_log_lines = pick(args.max_log_lines, file.max_log_lines, 10_000);
        if max_log_lines < 2 {
            anyhow::bail!("max_log_lines must be at least 2 (the first and the last line)");
        }
        Ok(Self {
            config,
            webhooks,
            jobs_dir: args
                .jobs_dir
                .clone()
                .or(file.jobs_dir)
                .unwrap_or_else(|| PathBuf::from("./jobs")),
            roles,
            max_log_lines,
            site,
            listen,
            data_dir,
            store,
            engine,
            schedules: file.schedules,
            queues: crate::declared::queues(file.queues)?,
            declared_limits: crate::declared::limits(file.limits)?,
            workflows: crate::declared::workflows(file.workflows, limits.max_payload_bytes)?,
            limits,
            edge,
            shutdown_drain,
            auth,
            tls,
        })
    }
}

/// Two seconds: a load balancer polling `/readyz` every second (the usual Kubernetes
/// readiness period is 1–10 s; with endpoint propagation, 2 s covers a 1 s probe) has
/// seen the 503 by then, while a rolling restart of many nodes is slowed by little.
const DEFAULT_SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The webhook settings from flags, environment, the configuration file and defaults.
/// Secrets that are not `whsec_<base64>` stop the start, naming which one.
fn webhook_settings(
    args: &ServeArgs,
    file: &FileSettings,
) -> anyhow::Result<errand_webhooks::WebhookSettings> {
    let d = errand_webhooks::WebhookSettings::default();
    let secrets = list_setting(&args.webhook_secrets, file.webhook_secrets.clone());
    let keys = secrets
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            s.parse::<errand_webhooks::SigningKey>()
                .map_err(|e| anyhow::anyhow!("webhook_secrets[{i}]: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let allow = list_setting(
        &args.callback_allow_cidrs,
        file.callback_allow_cidrs.clone(),
    )
    .iter()
    .map(|c| {
        c.trim().parse::<ipnet::IpNet>().map_err(|e| {
            anyhow::anyhow!("callback_allow_cidrs: `{c}` is not a CIDR (like 10.0.0.0/8): {e}")
        })
    })
    .collect::<anyhow::Result<Vec<_>>>()?;
    let timeout = duration_setting(
        "delivery_timeout",
        args.delivery_timeout
            .clone()
            .or(file.delivery_timeout.clone()),
    )?
    .unwrap_or(d.timeout);
    let backoff = duration_setting(
        "delivery_backoff",
        args.delivery_backoff
            .clone()
            .or(file.delivery_backoff.clone()),
    )?
    .unwrap_or(d.backoff);
    let retry_for = duration_setting(
        "delivery_retry_for",
        args.delivery_retry_for
            .clone()
            .or(file.delivery_retry_for.clone()),
    )?
    .unwrap_or(d.retry_for);
    if timeout < std::time::Duration::from_millis(100) {
        anyhow::bail!("delivery_timeout must be at least 100ms (on a flag or an ERRAND_* variable a bare number is milliseconds)");
    }
    if backoff < std::time::Duration::from_millis(10) {
        anyhow::bail!("delivery_backoff must be at least 10ms");
    }
    let pause_after = pick(
        args.subscription_pause_after,
        file.subscription_pause_after,
        d.pause_after,
    );
    if pause_after == 0 {
        anyhow::bail!("subscription_pause_after must be at least 1");
    }
    Ok(errand_webhooks::WebhookSettings {
        keys,
        policy: errand_webhooks::AddressPolicy {
            allow_private: pick(
                args.allow_private_callbacks,
                file.allow_private_callbacks,
                false,
            ),
            allow,
        },
        timeout,
        backoff,
        retry_for,
        pause_after,
        ..d
    })
}

/// A flag (or its variable) over the configuration file over the default.
fn pick<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

/// The edge's limits from flags, environment, the configuration file and defaults.
fn edge_limits(
    args: &ServeArgs,
    file: &FileSettings,
    max_request_bytes: usize,
) -> anyhow::Result<errand_server::edge::EdgeLimits> {
    let d = errand_server::edge::EdgeLimits::default();
    let timeout = |name: &str, flag: &Option<String>, toml: &Option<String>, default| {
        duration_setting(name, flag.clone().or_else(|| toml.clone())).map(|v| v.unwrap_or(default))
    };
    Ok(errand_server::edge::EdgeLimits {
        max_request_bytes,
        header_timeout: timeout(
            "header_timeout",
            &args.header_timeout,
            &file.header_timeout,
            d.header_timeout,
        )?,
        body_timeout: timeout(
            "body_timeout",
            &args.body_timeout,
            &file.body_timeout,
            d.body_timeout,
        )?,
        idle_timeout: timeout(
            "idle_timeout",
            &args.idle_timeout,
            &file.idle_timeout,
            d.idle_timeout,
        )?,
        max_connections: pick(
            args.max_connections,
            file.max_connections,
            d.max_connections,
        ),
        reserve_connections: pick(
            args.reserve_connections,
            file.reserve_connections,
            d.reserve_connections,
        ),
        body_budget_bytes: pick(
            args.body_budget_bytes,
            file.body_budget_bytes,
            d.body_budget_bytes,
        ),
    })
}

/// Limits that would leave a server that starts but cannot serve (every body a 413, every
/// long poll refused, connections closed before a request can arrive) stop the start with
/// the setting's name, rather than surfacing later as puzzling answers.
fn refuse_useless_limits(
    limits: &errand_server::ServerLimits,
    edge: &errand_server::edge::EdgeLimits,
) -> anyhow::Result<()> {
    let counts = [
        ("max_connections", edge.max_connections),
        ("max_request_bytes", limits.max_request_bytes),
        ("max_payload_bytes", limits.max_payload_bytes),
        ("max_waiting", limits.max_waiting),
        ("max_event_streams", limits.max_event_streams),
        ("body_budget_bytes", edge.body_budget_bytes),
    ];
    if let Some((name, _)) = counts.iter().find(|(_, v)| *v == 0) {
        anyhow::bail!("{name} must be at least 1: with 0 the server could serve nothing it limits");
    }
    let timeouts = [
        ("header_timeout", edge.header_timeout),
        ("body_timeout", edge.body_timeout),
        ("idle_timeout", edge.idle_timeout),
    ];
    if let Some((name, _)) = timeouts
        .iter()
        .find(|(_, v)| *v < std::time::Duration::from_millis(100))
    {
        anyhow::bail!(
            "{name} must be at least 100ms (on a flag or an ERRAND_* variable a bare number is milliseconds: write `10s` for ten seconds)"
        );
    }
    Ok(())
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
