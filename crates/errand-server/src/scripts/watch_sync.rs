//! Watched directories of the loaded definitions: a new or changed file enqueues one job of
//! its definition, and a durable mark of the file's version in the same transaction, so a
//! version never enqueues twice: not after a restart, not after its job was pruned.

use std::collections::BTreeMap;
use std::sync::Arc;

use errand_core::{JobId, NewJob};
use errand_engine::Engine;
use errand_runner::catalog::CatalogSnapshot;
use errand_runner::definition::{Definition, WatchTrigger};
use errand_runner::triggers::watch::{FileWatch, SeenFile, SinkError, WatchSink};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Enqueues a definition's job for each settled file version.
struct EngineWatchSink {
    engine: Arc<Engine>,
    def: Arc<Definition>,
    scope: String,
}

/// The mark scope of one watch: the definition and the directory.
fn scope_of(def: &Definition, trigger: &WatchTrigger) -> String {
    format!("watch:{}:{}", def.name, trigger.dir.display())
}

#[async_trait::async_trait]
impl WatchSink for EngineWatchSink {
    async fn file_seen(&self, file: SeenFile) -> Result<(), SinkError> {
        let payload = serde_json::json!({
            "path": file.path.display().to_string(),
            "relative": file.relative,
            "size": file.size,
            "modified": file.modified.to_string(),
        });
        let job = NewJob {
            secrets: Default::default(),
            flow: Default::default(),
            notify: Default::default(),
            id: JobId::new(),
            kind: self.def.kind.clone(),
            queue: self.def.queue.clone(),
            payload,
            priority: 0,
            run_at: errand_core::job::RunAt::Now,
            max_attempts: self.def.max_attempts,
            timeout: None,
            tags: vec!["watch".into()],
            idempotency_key: None,
            slot: None,
            ordering: Default::default(),
            inherit: Default::default(),
        };
        match self
            .engine
            .enqueue_marked(job, &self.scope, &file.version_key())
            .await
        {
            Ok(Some(inserted)) => {
                tracing::info!(definition = %self.def.name, file = %file.path.display(), job = %inserted.job.id, "watched file enqueued");
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(Box::new(e)),
        }
    }

    /// The file is gone: forget its mark, so marks do not pile up for ever.
    async fn file_gone(&self, _relative: &str, version_key: &str) -> Result<(), SinkError> {
        self.engine
            .forget_marks(&self.scope, vec![version_key.to_owned()])
            .await
            .map(|_| ())
            .map_err(|e| Box::new(e) as SinkError)
    }
}

/// Keeps one file watch per watch trigger of the loaded definitions until `token` fires.
pub(crate) async fn run(
    engine: Arc<Engine>,
    mut catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    token: CancellationToken,
) {
    let mut watching: BTreeMap<String, (Arc<Definition>, Vec<FileWatch>)> = BTreeMap::new();
    loop {
        let snapshot = catalog.borrow_and_update().clone();
        watching
            .retain(|name, (def, _)| snapshot.definitions.get(name).is_some_and(|d| **d == **def));
        for (name, def) in &snapshot.definitions {
            if def.watch.is_empty() || watching.contains_key(name) {
                continue;
            }
            let mut watches = Vec::new();
            for trigger in &def.watch {
                let sink = Arc::new(EngineWatchSink {
                    engine: engine.clone(),
                    def: def.clone(),
                    scope: scope_of(def, trigger),
                });
                match FileWatch::start(trigger.clone(), sink) {
                    Ok(w) => watches.push(w),
                    Err(e) => {
                        tracing::error!(definition = %name, dir = %trigger.dir.display(), error = %e, "cannot watch directory")
                    }
                }
            }
            watching.insert(name.clone(), (def.clone(), watches));
        }
        tokio::select! {
            changed = catalog.changed() => if changed.is_err() { return },
            _ = token.cancelled() => return,
        }
    }
}
