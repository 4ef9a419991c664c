//! A definition's `schedule` is a schedule like any other, owned by the definition: it is
//! declared when the definition loads or changes, and deleted when the definition goes.
//! A definition that fails to load keeps its schedule until it is fixed or removed, so a
//! typo never throws away a schedule's history.

use std::collections::BTreeSet;
use std::sync::Arc;

use errand_engine::Engine;
use errand_runner::catalog::CatalogSnapshot;
use errand_runner::definition::Definition;
use errand_core::schedule_spec::ScheduleSpec;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The prefix of every schedule a definition owns.
pub(crate) const OWNED_PREFIX: &str = "definition:";

/// The schedule a definition owns, as the store keeps it. The runner enforces the
/// definition's timeout itself (with the stop sequence), so the job carries none.
pub(crate) fn owned_spec(def: &Definition) -> Option<ScheduleSpec> {
    let mut spec = def.schedule_spec()?;
    spec.job.timeout_ms = None;
    Some(spec)
}

/// Keeps owned schedules in line with the catalog until `token` fires.
pub(crate) async fn run(
    engine: Arc<Engine>,
    mut catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    token: CancellationToken,
) {
    loop {
        let snapshot = catalog.borrow_and_update().clone();
        if let Err(e) = sync_once(&engine, &snapshot).await {
            tracing::warn!(error = %e, "syncing the schedules of job definitions failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => continue,
                _ = token.cancelled() => return,
            }
        }
        tokio::select! {
            changed = catalog.changed() => if changed.is_err() { return },
            _ = token.cancelled() => return,
        }
    }
}

async fn sync_once(
    engine: &Engine,
    snapshot: &CatalogSnapshot,
) -> Result<(), errand_store::StoreError> {
    let mut wanted = BTreeSet::new();
    for def in snapshot.definitions.values() {
        if let Some(spec) = owned_spec(def) {
            wanted.insert(spec.name.to_string());
            engine.schedule_declare(spec).await?;
        }
    }
    let broken: BTreeSet<&str> = snapshot.problems.iter().map(|p| p.name.as_str()).collect();
    for schedule in engine.schedule_list().await? {
        let name = schedule.spec.name.to_string();
        let Some(owner) = name.strip_prefix(OWNED_PREFIX) else {
            continue;
        };
        if wanted.contains(&name) || broken.contains(owner) {
            continue;
        }
        match engine.schedule_delete(&schedule.spec.name).await {
            Ok(()) | Err(errand_store::StoreError::NotFound { .. }) => {
                tracing::info!(schedule = %name, "deleted the schedule of a removed job definition");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
