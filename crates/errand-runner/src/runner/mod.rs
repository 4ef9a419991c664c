//! The runner of one node: keeps a claim loop per triggered definition of the catalog (and
//! a supervisor per continuous one), follows the catalog as it reloads, and on shutdown
//! stops runs in order.
//!
//! A definition that changes gets a new claim loop; runs already going finish under the
//! definition they started with. A definition that goes stops claiming; its runs finish.

mod claim_loop;
pub mod config;
mod continuous;
mod env;
mod job_run;
mod log_ship;
mod settle_batch;
mod verdict;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogSnapshot;
use crate::definition::{Definition, Mode};

use crate::host::JobHost;
use continuous::Supervision;

pub use config::RunnerConfig;
pub use continuous::InstanceHost;

use job_run::RunContext;

/// A definition's claim loop and the switch that ends it.
struct Feeding {
    def: Arc<Definition>,
    stop: CancellationToken,
}

/// What a runner needs to run continuous definitions; a runner without it (a remote
/// `errand worker`) runs triggered definitions only.
pub struct ContinuousParts {
    /// Instance records, instance logs and switches.
    pub instances: Arc<dyn InstanceHost>,
    /// This node, named in instance records.
    pub node: errand_core::NodeId,
    /// Names of definitions someone asked to start (a failed instance starts over).
    pub started: tokio::sync::broadcast::Sender<String>,
}

/// Runs the catalog's definitions until `shutdown` fires, then waits for every run to end
/// (each gets its stop sequence: shutdown file, SIGTERM, `stopping_wait_time`, SIGKILL; a
/// triggered run stopped so is given back to its queue).
pub async fn run(
    host: Arc<dyn JobHost>,
    continuous: Option<ContinuousParts>,
    config: RunnerConfig,
    mut catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    shutdown: CancellationToken,
) {
    let config = Arc::new(config);
    let supervision = continuous.map(|c| {
        Arc::new(continuous::Supervision {
            host: host.clone(),
            instances: c.instances,
            config: config.clone(),
            node: c.node,
            started: c.started,
            shutdown: shutdown.clone(),
        })
    });
    let ctx = Arc::new(RunContext {
        settler: settle_batch::SettleBatcher::start(host.clone()),
        host,
        config,
        shutdown: shutdown.clone(),
    });
    let runs: Arc<Mutex<JoinSet<()>>> = Arc::new(Mutex::new(JoinSet::new()));
    let mut loops: JoinSet<()> = JoinSet::new();
    let mut feeding: BTreeMap<String, Feeding> = BTreeMap::new();
    let mut supervising: BTreeMap<String, Feeding> = BTreeMap::new();
    let mut not_here = NotHere::default();
    loop {
        let snapshot = catalog.borrow_and_update().clone();
        reconcile(&ctx, &snapshot, &mut feeding, &mut loops, &runs);
        reconcile_continuous(
            supervision.as_ref(),
            &snapshot,
            &mut supervising,
            &mut not_here,
            &mut loops,
        );
        tokio::select! {
            changed = catalog.changed() => if changed.is_err() { break },
            _ = shutdown.cancelled() => break,
            // Reap finished runs so the set does not grow without bound.
            _ = reap(&runs) => {}
        }
    }
    for f in feeding.values().chain(supervising.values()) {
        f.stop.cancel();
    }
    while loops.join_next().await.is_some() {}
    let mut runs = runs.lock().await;
    while runs.join_next().await.is_some() {}
}

/// Waits a little, then collects finished run tasks without waiting for running ones.
async fn reap(runs: &Mutex<JoinSet<()>>) {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut runs = runs.lock().await;
    while runs.try_join_next().is_some() {}
}

/// Starts, restarts and stops claim loops so that they match the snapshot.
fn reconcile(
    ctx: &Arc<RunContext>,
    snapshot: &CatalogSnapshot,
    feeding: &mut BTreeMap<String, Feeding>,
    loops: &mut JoinSet<()>,
    runs: &Arc<Mutex<JoinSet<()>>>,
) {
    feeding.retain(|name, f| {
        let keep = snapshot
            .definitions
            .get(name)
            .is_some_and(|d| d.mode == Mode::Triggered && **d == *f.def);
        if !keep {
            f.stop.cancel();
        }
        keep
    });
    for (name, def) in &snapshot.definitions {
        if def.mode != Mode::Triggered || feeding.contains_key(name) {
            continue;
        }
        env::warn_missing_secret_env(&ctx.config, def);
        let stop = ctx.shutdown.child_token();
        loops.spawn(claim_loop::run(
            ctx.clone(),
            def.clone(),
            stop.clone(),
            runs.clone(),
        ));
        feeding.insert(
            name.clone(),
            Feeding {
                def: def.clone(),
                stop,
            },
        );
    }
    while loops.try_join_next().is_some() {}
}

/// Continuous definitions a node without supervision (a remote worker) skips: each is
/// named in the log once, not at every reconcile.
#[derive(Debug, Default)]
struct NotHere(std::collections::BTreeSet<String>);

impl NotHere {
    /// Skips `name`, saying so in the log the first time.
    fn skip_and_say_once(&mut self, name: &str) {
        if self.0.insert(name.to_string()) {
            tracing::warn!(definition = %name, "continuous definitions run on server nodes only; not started here");
        }
    }

    /// Forgets definitions that are gone or no longer continuous, so that one added back
    /// is named again.
    fn keep_only(&mut self, snapshot: &CatalogSnapshot) {
        self.0.retain(|name| {
            snapshot
                .definitions
                .get(name)
                .is_some_and(|d| d.mode == Mode::Continuous)
        });
    }
}

/// Starts, restarts and stops continuous supervisors so that they match the snapshot.
fn reconcile_continuous(
    sup: Option<&Arc<Supervision>>,
    snapshot: &CatalogSnapshot,
    supervising: &mut BTreeMap<String, Feeding>,
    not_here: &mut NotHere,
    loops: &mut JoinSet<()>,
) {
    not_here.keep_only(snapshot);
    supervising.retain(|name, f| {
        let keep = snapshot
            .definitions
            .get(name)
            .is_some_and(|d| d.mode == Mode::Continuous && **d == *f.def);
        if !keep {
            f.stop.cancel();
        }
        keep
    });
    for (name, def) in &snapshot.definitions {
        if def.mode != Mode::Continuous || supervising.contains_key(name) {
            continue;
        }
        let Some(sup) = sup else {
            not_here.skip_and_say_once(name);
            continue;
        };
        env::warn_missing_secret_env(&sup.config, def);
        let stop = sup.shutdown.child_token();
        loops.spawn(continuous::supervise(
            sup.clone(),
            def.clone(),
            stop.clone(),
        ));
        supervising.insert(
            name.clone(),
            Feeding {
                def: def.clone(),
                stop,
            },
        );
    }
}
