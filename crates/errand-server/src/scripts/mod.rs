//! Job definitions inside `errand serve`: the catalog of the jobs directory, the runner
//! that runs them through the engine (worker role), the schedules they own (scheduler
//! role) and their watched directories; and what the API's definition, hook and log
//! routes read.

mod engine_host;
mod schedule_sync;
mod watch_sync;

use std::path::PathBuf;
use std::sync::Arc;

use errand_engine::Engine;
use errand_runner::catalog::{Catalog, CatalogSnapshot};
use errand_runner::runner::{self, ContinuousParts, RunnerConfig};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use engine_host::{EngineHost, LogBounds};
pub(crate) use schedule_sync::{owned_spec, OWNED_PREFIX};

/// What `errand serve` does with its jobs directory.
#[derive(Debug, Clone)]
pub struct ScriptSettings {
    /// The jobs directory (`--jobs-dir`, default `./jobs`).
    pub jobs_dir: PathBuf,
    /// Run definitions on this node (the `worker` role).
    pub run_jobs: bool,
    /// Keep the schedules definitions own (the `scheduler` role).
    pub own_schedules: bool,
    /// Per-attempt log bounds.
    pub log_bounds: LogBounds,
    /// Lines longer than this are split.
    pub max_line_bytes: usize,
}

/// The loaded jobs directory, as the routes see it.
pub struct Scripts {
    /// Keeps the directory watched for as long as the server runs.
    _catalog: Option<Catalog>,
    snapshots: watch::Receiver<Arc<CatalogSnapshot>>,
    started: broadcast::Sender<String>,
    jobs_dir: Option<PathBuf>,
    log_bounds: LogBounds,
}

impl Scripts {
    /// No jobs directory: an empty catalog (embedding and tests).
    pub fn none() -> Arc<Self> {
        let (_tx, snapshots) = watch::channel(Arc::new(CatalogSnapshot::default()));
        Arc::new(Self {
            _catalog: None,
            snapshots,
            started: broadcast::channel(16).0,
            jobs_dir: None,
            log_bounds: LogBounds::default(),
        })
    }

    /// The definitions and problems now.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.snapshots.borrow().clone()
    }

    /// The jobs directory, when there is one.
    pub fn jobs_dir(&self) -> Option<&std::path::Path> {
        self.jobs_dir.as_deref()
    }

    /// Log lines kept per attempt (lines shipped by remote workers included).
    pub fn log_bounds(&self) -> LogBounds {
        self.log_bounds
    }

    /// Tells this node's supervisors that `definition` was started: a failed continuous
    /// instance starts over.
    pub(crate) fn announce_start(&self, definition: &str) {
        let _ = self.started.send(definition.to_owned());
    }
}

/// Loads the jobs directory and starts what this node's roles call for; the tasks end when
/// `token` fires (runs get their stop sequence first).
pub async fn start(
    engine: Arc<Engine>,
    settings: ScriptSettings,
    token: CancellationToken,
) -> (Arc<Scripts>, JoinSet<()>) {
    let (catalog, snapshots) = Catalog::watch(settings.jobs_dir.clone()).await;
    let started = broadcast::channel(64).0;
    let mut tasks = JoinSet::new();
    if settings.own_schedules {
        tasks.spawn(schedule_sync::run(
            engine.clone(),
            snapshots.clone(),
            token.clone(),
        ));
    }
    if settings.run_jobs {
        let host = EngineHost::new(engine.clone(), settings.log_bounds);
        let mut config = RunnerConfig::new(format!("errand-node:{}", engine.node_id()));
        config.max_line_bytes = settings.max_line_bytes;
        tasks.spawn(runner::run(
            host.clone(),
            Some(ContinuousParts {
                instances: host.clone(),
                node: engine.node_id(),
                started: started.clone(),
            }),
            config,
            snapshots.clone(),
            token.clone(),
        ));
        tasks.spawn(watch_sync::run(engine, snapshots.clone(), token));
    }
    let scripts = Arc::new(Scripts {
        _catalog: Some(catalog),
        snapshots,
        started,
        jobs_dir: Some(settings.jobs_dir),
        log_bounds: settings.log_bounds,
    });
    (scripts, tasks)
}
