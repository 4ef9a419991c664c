//! A definition's `schedule` is a schedule like any other, owned by the definition: it is
//! declared when the definition loads or changes, and deleted when the definition goes.
//! A definition that fails to load keeps its schedule until it is fixed or removed, so a
//! typo never throws away a schedule's history.
//!
//! A node deletes only schedules it declared itself and then saw go from its own jobs
//! directory: nodes with another (or no) jobs directory never delete the schedules of
//! definitions they do not have.

use std::collections::BTreeSet;
use std::sync::Arc;

use errand_core::schedule_spec::ScheduleSpec;
use errand_engine::Engine;
use errand_runner::catalog::CatalogSnapshot;
use errand_runner::definition::Definition;
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
    let mut declared = BTreeSet::new();
    loop {
        let snapshot = catalog.borrow_and_update().clone();
        if let Err(e) = sync_once(&engine, &snapshot, &mut declared).await {
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
    declared: &mut BTreeSet<errand_core::ScheduleName>,
) -> Result<(), errand_store::StoreError> {
    let mut wanted = BTreeSet::new();
    for def in snapshot.definitions.values() {
        if let Some(spec) = owned_spec(def) {
            let name = spec.name.clone();
            engine.schedule_declare(spec).await?;
            declared.insert(name.clone());
            wanted.insert(name);
        }
    }
    let broken: BTreeSet<&str> = snapshot.problems.iter().map(|p| p.name.as_str()).collect();
    let gone: Vec<_> = declared
        .iter()
        .filter(|name| !wanted.contains(*name))
        .filter(|name| {
            let owner = name.as_str().strip_prefix(OWNED_PREFIX).unwrap_or_default();
            !broken.contains(owner)
        })
        .cloned()
        .collect();
    for name in gone {
        match engine.schedule_delete(&name).await {
            Ok(()) | Err(errand_store::StoreError::NotFound { .. }) => {
                tracing::info!(schedule = %name, "deleted the schedule of a removed job definition");
                declared.remove(&name);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
