//! `errand serve`: open the store, start the engine and its maintenance, serve HTTP, and
//! shut down in order on SIGINT or SIGTERM.

use anyhow::Context;
use errand_engine::{maintenance, Engine};
use errand_server::AppState;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Creates or updates the schedules `errand.toml` declares. Declaring the same schedule
/// again changes nothing (its history and next slot stay), so every node may do it at start.
async fn declare_schedules(
    engine: &errand_engine::Engine,
    settings: &Settings,
) -> anyhow::Result<()> {
    let limits = errand_api::EnqueueLimits {
        max_payload_bytes: settings.limits.max_payload_bytes,
    };
    for declared in &settings.schedules {
        let spec = declared.clone().into_spec(&limits).map_err(|e| {
            anyhow::anyhow!("schedule `{}` in the configuration: {e}", declared.name)
        })?;
        engine
            .schedule_declare(spec)
            .await
            .with_context(|| format!("declaring schedule `{}`", declared.name))?;
        tracing::info!(schedule = %declared.name, "declared schedule in place");
    }
    Ok(())
}

/// What `GET /v1/nodes` says about this node: its store (never the URL's credentials) and
/// its roles.
fn about(settings: &Settings) -> errand_core::NodeAbout {
    use crate::settings::StoreLocation;
    let store = match &settings.store {
        StoreLocation::Sqlite(path) => errand_core::StoreAbout {
            kind: "sqlite".into(),
            location: path.display().to_string(),
        },
        StoreLocation::Postgres { url, schema } => {
            // `postgres://user:secret@host:port/db?options`: only `host:port/db`.
            // (A `key=value` string may hold a password anywhere: only the schema then.)
            let location = match url.split_once("://") {
                Some((_, rest)) => {
                    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                    let place = rest.split(['?', '#']).next().unwrap_or(rest);
                    format!("{place} schema {schema}")
                }
                None => format!("schema {schema}"),
            };
            errand_core::StoreAbout {
                kind: "postgres".into(),
                location,
            }
        }
    };
    let r = settings.roles;
    let roles = [
        (r.api, "api"),
        (r.scheduler, "scheduler"),
        (r.worker, "worker"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name.to_string())
    .collect();
    errand_core::NodeAbout { store, roles }
}

/// Runs the server until a shutdown signal.
///
/// # Errors
/// The store cannot be opened or the address cannot be bound.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let (store, store_desc) = crate::store_open::open(&settings.store, &settings.data_dir).await?;
    let engine = Engine::new(store, settings.engine.clone());
    engine.set_about(about(&settings));
    crate::declared::apply(&engine, &settings.queues, &settings.declared_limits).await?;
    crate::declared::apply_workflows(&engine, &settings.workflows).await?;
    declare_schedules(&engine, &settings).await?;
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
    .with_scripts(scripts)
    .with_webhooks(!settings.webhooks.keys.is_empty());
    let router = if settings.roles.api {
        errand_server::app(state).0
    } else {
        errand_server::health_app(state)
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    // The first line on stdout is the address: tests and scripts read it.
    println!("errand listening on http://{addr}");
    println!(
        "data directory {} (store: {store_desc})",
        settings.data_dir.display()
    );
    tracing::info!(%addr, store = %store_desc, "errand serving");
    let engine_for_signal = engine.clone();
    let scripts_stop = scripts_token.clone();
    errand_server::edge::serve(listener, router, settings.edge, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new requests, waiting calls released");
        engine_for_signal.shutdown();
        // Runs get their stop sequence now; what cannot finish in time returns to the queue.
        scripts_stop.cancel();
    })
    .await
    .context("serving HTTP")?;
    scripts_token.cancel();
    while script_tasks.join_next().await.is_some() {}
    token.cancel();
    while webhook_tasks.join_next().await.is_some() {}
    while services.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}
