//! `errand serve`: open the store, start the engine and its maintenance, serve HTTP, and
//! shut down in order on SIGINT or SIGTERM.

use anyhow::Context;
use errand_engine::{maintenance, Engine};
use errand_server::AppState;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// SIGINT: Ctrl-C at a terminal, where nobody routes traffic by `/readyz`.
    Interrupt,
    /// SIGTERM: what an orchestrator (Kubernetes, systemd) sends.
    Terminate,
}

/// Resolves on SIGINT or SIGTERM, saying which.
pub(crate) async fn shutdown_signal() -> StopSignal {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return StopSignal::Interrupt;
                }
            };
        tokio::select! {
            _ = ctrl_c => StopSignal::Interrupt,
            _ = term.recv() => StopSignal::Terminate,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        StopSignal::Interrupt
    }
}

/// The schedules `errand.toml` declares, checked before anything is created.
fn schedule_specs(
    settings: &Settings,
) -> anyhow::Result<Vec<errand_core::schedule_spec::ScheduleSpec>> {
    let limits = errand_api::EnqueueLimits {
        max_payload_bytes: settings.limits.max_payload_bytes,
    };
    settings
        .schedules
        .iter()
        .map(|declared| {
            declared.clone().into_spec(&limits).map_err(|e| {
                anyhow::anyhow!("schedule `{}` in the configuration: {e}", declared.name)
            })
        })
        .collect()
}

/// Creates or updates the schedules `errand.toml` declares. Declaring the same schedule
/// again changes nothing (its history and next slot stay), so every node may do it at start.
async fn declare_schedules(
    engine: &errand_engine::Engine,
    specs: Vec<errand_core::schedule_spec::ScheduleSpec>,
) -> anyhow::Result<()> {
    for spec in specs {
        let name = spec.name.to_string();
        engine
            .schedule_declare(spec)
            .await
            .with_context(|| format!("declaring schedule `{name}`"))?;
        tracing::info!(schedule = %name, "declared schedule in place");
    }
    Ok(())
}

/// What `GET /v1/nodes` says about this node: where its store is (never credentials) and
/// its roles.
fn about(store: errand_core::StoreAbout, roles: crate::settings::Roles) -> errand_core::NodeAbout {
    errand_core::NodeAbout {
        store,
        roles: role_list(roles).into_iter().map(String::from).collect(),
    }
}

/// Whether the jobs directory is there; one that exists but cannot be read (or is not a
/// directory) stops the start, since its definitions would silently not run.
fn inspect_jobs_dir(dir: &std::path::Path) -> anyhow::Result<bool> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => anyhow::bail!("jobs directory {}: {e}", dir.display()),
        Ok(meta) if !meta.is_dir() => anyhow::bail!(
            "jobs directory {} is not a directory: pass --jobs-dir with a directory of job definitions",
            dir.display()
        ),
        Ok(_) => match std::fs::read_dir(dir) {
            Ok(_) => Ok(true),
            Err(e) => anyhow::bail!("jobs directory {} cannot be read: {e}", dir.display()),
        },
    }
}

/// What to tell the operator when tokens are needed and none can exist.
const NEEDS_TOKENS: &str = "make an admin token first with `errand tokens create --name admin --scopes admin` (against this store: the same --data-dir or --store), or set ERRAND_ADMIN_TOKEN to a secret of 32 characters or more; or pass --insecure-no-auth if anyone who can reach this port may do anything";

/// A SQLite store that does not exist yet holds no token: with tokens required and no
/// ERRAND_ADMIN_TOKEN nobody could sign in, so refuse before creating it.
fn refuse_a_new_store_without_tokens(settings: &Settings) -> anyhow::Result<()> {
    if let (
        crate::settings::AuthMode::Required(config),
        crate::settings::StoreLocation::Sqlite(path),
    ) = (&settings.auth, &settings.store)
    {
        if !config.has_env_admin() && !path.try_exists().unwrap_or(false) {
            anyhow::bail!(
                "errand needs API tokens on {} and the store {} does not exist yet: {NEEDS_TOKENS}",
                settings.listen,
                path.display()
            );
        }
    }
    Ok(())
}

/// The server's auth settings and the startup line's words about them. Tokens required and
/// none usable (and no ERRAND_ADMIN_TOKEN) stops the start.
async fn auth_config(
    engine: &Engine,
    settings: &Settings,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(errand_server::AuthConfig, String)> {
    use crate::settings::AuthMode;
    match &settings.auth {
        AuthMode::Loopback => Ok((
            errand_server::AuthConfig::off(),
            "off (loopback only; --require-auth turns it on)".into(),
        )),
        AuthMode::Insecure => {
            tracing::warn!(%addr, "serving without authentication (--insecure-no-auth): anyone who reaches this port can do anything");
            Ok((
                errand_server::AuthConfig::off(),
                "OFF (--insecure-no-auth)".into(),
            ))
        }
        AuthMode::Required(config) => {
            let now = jiff::Timestamp::now();
            let usable = engine
                .token_list()
                .await?
                .iter()
                .filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now))
                .count();
            if usable == 0 && !config.has_env_admin() {
                anyhow::bail!(
                    "errand needs API tokens on {addr} and the store has none: {NEEDS_TOKENS}"
                );
            }
            let env = if config.has_env_admin() {
                " + ERRAND_ADMIN_TOKEN"
            } else {
                ""
            };
            // A PostgreSQL node keeps nothing in a data directory: without the shared
            // variable its secret lives in memory.
            let dir = match settings.store {
                crate::settings::StoreLocation::Sqlite(_) => Some(settings.data_dir.as_path()),
                crate::settings::StoreLocation::Postgres { .. } => None,
            };
            let (secret, source) = errand_server::load_session_secret(
                std::env::var("ERRAND_SESSION_SECRET").ok().as_deref(),
                dir,
            )?;
            let sessions = match source {
                errand_server::SessionSecretSource::Env => "ERRAND_SESSION_SECRET".to_string(),
                errand_server::SessionSecretSource::File(path) => path.display().to_string(),
                errand_server::SessionSecretSource::Memory => {
                    tracing::warn!("dashboard sessions are good on this node only and end when it stops: set ERRAND_SESSION_SECRET to the same value on every node");
                    "a secret of this process (set ERRAND_SESSION_SECRET)".to_string()
                }
            };
            Ok((
                config.clone().with_session_secret(secret),
                format!("tokens ({usable} usable{env}; dashboard sessions keyed by {sessions})"),
            ))
        }
    }
}

/// Binds the listen address; a taken or forbidden address says what to do about it.
async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use std::io::ErrorKind;
    tokio::net::TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => anyhow::anyhow!(
            "{addr} is in use: is another errand running? stop it or pass --listen with another address"
        ),
        ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot listen on {addr}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); pass --listen with another port"
        ),
        ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "cannot listen on {addr}: no network interface of this machine has that address; pass --listen with one it has (127.0.0.1:7878, 0.0.0.0:7878)"
        ),
        _ => anyhow::Error::new(e).context(format!("cannot listen on {addr}")),
    })
}

/// The role names, in the order `--roles` documents them.
fn role_list(roles: crate::settings::Roles) -> Vec<&'static str> {
    [
        (roles.api, "api"),
        (roles.worker, "worker"),
        (roles.scheduler, "scheduler"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name)
    .collect()
}

/// Runs the server until a shutdown signal.
///
/// Nothing is created before every setting has been checked and the listen address is
/// bound: a start refused for a setting or the address leaves no data directory, file or
/// schema behind. One that fails once the store is open (tokens required and none there,
/// a declared workflow or schedule that does not apply) leaves the store it opened, and
/// closes it first.
///
/// # Errors
/// A setting is wrong, the address cannot be bound, the store cannot be opened, or what
/// the settings declare cannot be put in place.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let schedules = schedule_specs(&settings)?;
    let tls = settings
        .tls
        .as_ref()
        .map(|files| errand_server::edge::tls_acceptor(&files.cert, &files.key))
        .transpose()?;
    let jobs_dir_present = inspect_jobs_dir(&settings.jobs_dir)?;
    let listener = bind(settings.listen).await?;
    refuse_a_new_store_without_tokens(&settings)?;
    let opened = crate::store_open::open(&settings.store, &settings.data_dir).await?;
    let store_desc = opened.desc;
    let engine = Engine::new(opened.store, settings.engine.clone());
    engine.set_about(about(opened.about, settings.roles));
    // From here on every way out closes the store, a failed start included, so that a
    // PostgreSQL node says goodbye on its connections whichever way it ends.
    let prepared = Prepared {
        schedules,
        tls,
        listener,
        jobs_dir_present,
        store_desc,
    };
    let outcome = serve_on(engine.clone(), settings, prepared).await;
    engine.close_store().await;
    if outcome.is_ok() {
        tracing::info!("stopped");
    }
    outcome
}

/// What a start readied before it opened the store (so that a wrong setting failed before
/// anything was created), and the opened store's description.
struct Prepared {
    schedules: Vec<errand_core::schedule_spec::ScheduleSpec>,
    tls: Option<errand_server::edge::TlsAcceptor>,
    listener: tokio::net::TcpListener,
    jobs_dir_present: bool,
    store_desc: String,
}

/// Declares what the settings declare on the open store, serves until a stop signal, and
/// stops the node's tasks; the caller closes the store.
async fn serve_on(
    engine: std::sync::Arc<Engine>,
    settings: Settings,
    prepared: Prepared,
) -> anyhow::Result<()> {
    let Prepared {
        schedules,
        tls,
        listener,
        jobs_dir_present,
        store_desc,
    } = prepared;
    let addr = listener.local_addr()?;
    let (mut auth, auth_line) = auth_config(&engine, &settings, addr).await?;
    // Over HTTPS the browser sends the dashboard's session cookies over TLS only.
    auth.secure_cookies = tls.is_some();
    crate::declared::apply(&engine, &settings.queues, &settings.declared_limits).await?;
    crate::declared::apply_workflows(&engine, &settings.workflows).await?;
    declare_schedules(&engine, schedules).await?;
    let token = CancellationToken::new();
    let mut services = maintenance::spawn(engine.clone(), token.clone(), settings.roles.scheduler);
    // Schedules that start a workflow enqueue a start job; nodes that run work or fire
    // schedules run those jobs.
    if settings.roles.worker || settings.roles.scheduler {
        maintenance::spawn_workflow_starter(engine.clone(), token.clone(), &mut services);
    }
    // Runs stop after HTTP has stopped taking requests, and before the store closes.
    let scripts_token = CancellationToken::new();
    let (scripts, mut script_tasks) = errand_server::scripts::start(
        engine.clone(),
        errand_server::scripts::ScriptSettings {
            jobs_dir: settings.jobs_dir.clone(),
            run_jobs: settings.roles.worker,
            own_schedules: settings.roles.scheduler,
            log_bounds: errand_server::scripts::LogBounds {
                keep_head: settings.max_log_lines.div_ceil(2),
                keep_tail: settings.max_log_lines / 2,
            },
            max_line_bytes: 16 * 1024,
        },
        scripts_token.clone(),
    )
    .await;
    // Outgoing webhooks: the fan-out (one node at a time, by lease) and the delivery worker
    // (every node). Nothing starts without a signing secret.
    let mut webhook_tasks =
        errand_webhooks::spawn(engine.clone(), settings.webhooks.clone(), token.clone());
    let state = AppState::new(
        engine.clone(),
        settings.limits,
        std::sync::Arc::new(settings.site.clone()),
    )
    .with_scripts(scripts.clone())
    .with_webhooks(!settings.webhooks.keys.is_empty())
    .with_auth(auth);
    let router = if settings.roles.api {
        errand_server::app(state).0
    } else {
        errand_server::health_app(state)
    };
    let catalog = scripts.snapshot();
    let jobs_dir = if jobs_dir_present {
        let count = catalog.definitions.len();
        let mut found = format!("{count} definition{}", if count == 1 { "" } else { "s" });
        let failed: std::collections::BTreeSet<&str> =
            catalog.problems.iter().map(|p| p.name.as_str()).collect();
        if !failed.is_empty() {
            found.push_str(&format!(
                ", {} folder{} that did not load: see the log or `errand definitions list`",
                failed.len(),
                if failed.len() == 1 { "" } else { "s" }
            ));
        }
        found
    } else {
        "absent: no script jobs".to_string()
    };
    let config = match &settings.config {
        Some(path) => path.display().to_string(),
        None => "none (flags and ERRAND_* variables only)".to_string(),
    };
    let roles = role_list(settings.roles).join(", ");
    let webhooks = match settings.webhooks.keys.len() {
        0 => webhooks_off(&engine).await,
        n => format!("on ({n} signing key{})", if n == 1 { "" } else { "s" }),
    };
    // The first line on stdout is the address: tests and scripts read it. What the server
    // uses follows, one line each.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("errand listening on {scheme}://{addr}");
    println!("store: {store_desc}");
    println!("config: {config}");
    println!(
        "jobs directory: {} ({jobs_dir})",
        settings.jobs_dir.display()
    );
    println!("roles: {roles}");
    println!("webhooks: {webhooks}");
    println!("auth: {auth_line}");
    tracing::info!(%addr, store = %store_desc, %config, jobs_dir = %settings.jobs_dir.display(), %roles, %webhooks, "errand serving");
    let engine_for_signal = engine.clone();
    let scripts_stop = scripts_token.clone();
    let drain = settings.shutdown_drain;
    let served = errand_server::edge::serve(listener, router, settings.edge, tls, async move {
        let signal = shutdown_signal().await;
        // Out of rotation first: `/readyz` answers 503 from now on. On SIGTERM the node
        // keeps serving for the drain, so that the load balancer sees the 503 and stops
        // sending requests before the listener closes (else they would be refused). Ctrl-C
        // at a terminal stops at once; a second signal cuts the drain short.
        engine_for_signal.begin_drain();
        if signal == StopSignal::Terminate && !drain.is_zero() {
            tracing::info!(drain = ?drain, "shutting down: not ready, serving until the drain ends");
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                _ = shutdown_signal() => {}
            }
        }
        tracing::info!("shutting down: no new requests, waiting calls released");
        engine_for_signal.shutdown();
        // Runs get their stop sequence now; what cannot finish in time returns to the queue.
        scripts_stop.cancel();
    })
    .await;
    // A server that failed still stops its tasks before the store closes.
    scripts_token.cancel();
    while script_tasks.join_next().await.is_some() {}
    token.cancel();
    while webhook_tasks.join_next().await.is_some() {}
    while services.join_next().await.is_some() {}
    served.context("serving HTTP")
}

/// The start line's word on webhooks for a node without a signing secret. Subscriptions
/// in the store (made elsewhere, or brought by an import) get nothing from this node, and
/// the event log is kept for them until a node with a secret fans them out: said at
/// start, not found out when the log has grown.
async fn webhooks_off(engine: &Engine) -> String {
    let waiting = match engine.subscription_list().await {
        Ok(subs) => subs.len(),
        Err(e) => {
            tracing::warn!(error = %e, "could not count the subscriptions");
            0
        }
    };
    if waiting == 0 {
        return "off (no webhook_secrets)".to_string();
    }
    let text = format!(
        "off (no webhook_secrets): this node delivers none of the {waiting} subscription{} in the store, and the event log is kept for {} until a node with a webhook secret delivers",
        if waiting == 1 { "" } else { "s" },
        if waiting == 1 { "it" } else { "them" },
    );
    tracing::warn!("webhooks {text}");
    text
}
