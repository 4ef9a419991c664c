//! The jobs directory as a whole: every definition that loaded and every problem, reloaded
//! when a folder is added, edited or removed.
//!
//! Layout: `<jobs-dir>/<name>/job.toml` folders, and WebJobs folders under
//! `<jobs-dir>/triggered/<name>/` and `<jobs-dir>/continuous/<name>/` (those two names are
//! reserved). Folders whose name starts with `.` are skipped; plain files are ignored.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::definition::{
    load_folder, Definition, DefinitionProblem, FolderLayout, HookTrigger, LoadEnv, Mode,
};

/// How long the directory must be quiet after a change before it is reloaded: an editor's
/// save or a `cp -r` is a burst of events, and one reload should see all of it.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(250);
/// Longest a burst of changes can put a reload off.
const MAX_RELOAD_DELAY: Duration = Duration::from_secs(2);
/// How often the directory is reloaded anyway while it is watched: a safety net for
/// events a filesystem does not report (network filesystems) and for interpreters
/// installed on `PATH` after a load problem.
const POLL_WHILE_WATCHED: Duration = Duration::from_secs(30);
/// How often a jobs directory that does not exist (yet) is looked for.
const POLL_WHILE_ABSENT: Duration = Duration::from_secs(1);

/// Everything loaded from the jobs directory at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogSnapshot {
    /// The jobs directory (absolute).
    pub jobs_dir: PathBuf,
    /// The definitions that loaded, by name.
    pub definitions: BTreeMap<String, Arc<Definition>>,
    /// Every folder that did not load, and why, ordered by name.
    pub problems: Vec<DefinitionProblem>,
}

impl CatalogSnapshot {
    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Definition>> {
        self.definitions.get(name)
    }

    /// The definition that runs jobs of `kind` (kinds are unique across definitions).
    pub fn by_kind(&self, kind: &str) -> Option<&Arc<Definition>> {
        self.definitions.values().find(|d| d.kind.as_str() == kind)
    }

    /// The definition with the hook `name`, and the hook (hook names are unique across
    /// definitions).
    pub fn by_hook(&self, name: &str) -> Option<(&Arc<Definition>, &HookTrigger)> {
        self.definitions
            .values()
            .find_map(|d| d.hooks.iter().find(|h| h.name == name).map(|h| (d, h)))
    }

    /// The problems of the folder named `name`.
    pub fn problems_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a DefinitionProblem> {
        self.problems.iter().filter(move |p| p.name == name)
    }
}

/// Loads the whole jobs directory. A directory that does not exist holds no definitions.
/// Blocking I/O: call it off the async threads.
pub fn load(jobs_dir: &Path) -> CatalogSnapshot {
    load_with(jobs_dir, &LoadEnv::from_process())
}

/// One folder that may hold a definition.
struct Candidate {
    name: String,
    dir: PathBuf,
    layout: FolderLayout,
}

pub(crate) fn load_with(jobs_dir: &Path, env: &LoadEnv) -> CatalogSnapshot {
    let jobs_dir = std::path::absolute(jobs_dir).unwrap_or_else(|_| jobs_dir.to_path_buf());
    let mut problems = Vec::new();
    let mut candidates = Vec::new();
    for (name, dir) in subfolders(&jobs_dir, &mut problems) {
        match name.as_str() {
            "triggered" | "continuous" => {
                let mode = if name == "triggered" {
                    Mode::Triggered
                } else {
                    Mode::Continuous
                };
                for (name, dir) in subfolders(&dir, &mut problems) {
                    candidates.push(Candidate {
                        name,
                        dir,
                        layout: FolderLayout::WebJobs(mode),
                    });
                }
            }
            _ => candidates.push(Candidate {
                name,
                dir,
                layout: FolderLayout::JobToml,
            }),
        }
    }
    // By name; for one name, job.toml folders first, then continuous/, then triggered/.
    candidates.sort_by_key(|c| {
        let rank = match c.layout {
            FolderLayout::JobToml => 0,
            FolderLayout::WebJobs(Mode::Continuous) => 1,
            FolderLayout::WebJobs(Mode::Triggered) => 2,
        };
        (c.name.clone(), rank)
    });

    let mut definitions: BTreeMap<String, Arc<Definition>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    let mut hooks: BTreeMap<String, String> = BTreeMap::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for c in candidates {
        if let Some(first) = seen.get(&c.name) {
            problems.push(DefinitionProblem {
                name: c.name.clone(),
                file: c.dir.clone(),
                key: None,
                reason: format!(
                    "the name `{}` is already taken by {}: rename one of the folders",
                    c.name,
                    first.display()
                ),
            });
            continue;
        }
        seen.insert(c.name.clone(), c.dir.clone());
        let definition = match load_folder(&c.name, &c.dir, c.layout, env) {
            Ok(d) => d,
            Err(found) => {
                problems.extend(found);
                continue;
            }
        };
        if let Some(problem) = clash(&definition, &kinds, &hooks) {
            problems.push(problem);
            continue;
        }
        kinds.insert(definition.kind.to_string(), definition.name.clone());
        for h in &definition.hooks {
            hooks.insert(h.name.clone(), definition.name.clone());
        }
        definitions.insert(definition.name.clone(), Arc::new(definition));
    }
    problems.sort_by(|a, b| (&a.name, &a.file).cmp(&(&b.name, &b.file)));
    CatalogSnapshot {
        jobs_dir,
        definitions,
        problems,
    }
}

/// The kind or a hook of `d` already belongs to an earlier definition (by name).
fn clash(
    d: &Definition,
    kinds: &BTreeMap<String, String>,
    hooks: &BTreeMap<String, String>,
) -> Option<DefinitionProblem> {
    let problem = |key: String, reason: String| DefinitionProblem {
        name: d.name.clone(),
        file: d.file(),
        key: Some(key),
        reason,
    };
    if let Some(other) = kinds.get(d.kind.as_str()) {
        return Some(problem(
            "kind".into(),
            format!(
                "kind `{}` already runs definition `{other}`: each kind runs one definition, set another `kind`",
                d.kind
            ),
        ));
    }
    d.hooks.iter().enumerate().find_map(|(i, h)| {
        hooks.get(&h.name).map(|other| {
            problem(
                format!("triggers.hook[{i}].name"),
                format!("hook `{}` already belongs to definition `{other}`", h.name),
            )
        })
    })
}

/// The folders in `dir` (following symbolic links), by name, skipping hidden ones. A name
/// that is not UTF-8 is a problem.
fn subfolders(dir: &Path, problems: &mut Vec<DefinitionProblem>) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let file_name = entry.file_name();
        match file_name.to_str() {
            Some(name) if name.starts_with('.') => {}
            Some(name) => out.push((name.to_string(), path)),
            None => problems.push(DefinitionProblem {
                name: file_name.to_string_lossy().into_owned(),
                file: path,
                key: None,
                reason: "the folder name is not UTF-8: rename it".into(),
            }),
        }
    }
    out.sort();
    out
}

/// The jobs directory, watched: every change to it is loaded and published.
///
/// Dropping the catalog stops the watching.
#[derive(Debug)]
pub struct Catalog {
    current: watch::Receiver<Arc<CatalogSnapshot>>,
    reloads: mpsc::Sender<oneshot::Sender<Arc<CatalogSnapshot>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Catalog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Catalog {
    /// Loads `jobs_dir` and watches it: a folder added, edited or removed is reloaded
    /// (the whole directory, about [`RELOAD_DEBOUNCE`] after the last change) and a new
    /// snapshot is published on the receiver when, and only when, something changed. A
    /// directory that does not exist yet is looked for every second until it does.
    pub async fn watch(
        jobs_dir: impl Into<PathBuf>,
    ) -> (Catalog, watch::Receiver<Arc<CatalogSnapshot>>) {
        Self::watch_with(jobs_dir.into(), LoadEnv::from_process()).await
    }

    pub(crate) async fn watch_with(
        jobs_dir: PathBuf,
        env: LoadEnv,
    ) -> (Catalog, watch::Receiver<Arc<CatalogSnapshot>>) {
        let jobs_dir = std::path::absolute(&jobs_dir).unwrap_or(jobs_dir);
        let env = Arc::new(env);
        let first = reload(&jobs_dir, &env).await;
        log_changes(&CatalogSnapshot::default(), &first);
        let (tx, rx) = watch::channel(Arc::new(first));
        let (reloads, requests) = mpsc::channel(8);
        let task = tokio::spawn(watch_loop(jobs_dir, env, tx, requests));
        let catalog = Catalog {
            current: rx.clone(),
            reloads,
            task,
        };
        (catalog, rx)
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.current.borrow().clone()
    }

    /// Another receiver of the snapshots.
    pub fn subscribe(&self) -> watch::Receiver<Arc<CatalogSnapshot>> {
        self.current.clone()
    }

    /// Reloads now, without waiting for a change, and answers the snapshot that holds
    /// (published as usual when it changed).
    pub async fn reload_now(&self) -> Arc<CatalogSnapshot> {
        let (tx, rx) = oneshot::channel();
        if self.reloads.send(tx).await.is_err() {
            return self.snapshot();
        }
        rx.await.unwrap_or_else(|_| self.snapshot())
    }
}

async fn reload(jobs_dir: &Path, env: &Arc<LoadEnv>) -> CatalogSnapshot {
    let (dir, env) = (jobs_dir.to_path_buf(), env.clone());
    match tokio::task::spawn_blocking(move || load_with(&dir, &env)).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            tracing::error!(error = %e, "loading the jobs directory panicked");
            CatalogSnapshot {
                jobs_dir: jobs_dir.to_path_buf(),
                ..CatalogSnapshot::default()
            }
        }
    }
}

/// The directory's identity, so a directory removed and made again is watched again.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

type Events = mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

/// A recursive watcher of `dir` whose events arrive on the returned receiver.
fn start_watcher(dir: &Path) -> Option<(notify::RecommendedWatcher, Events)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .map_err(
        |e| tracing::warn!(error = %e, "cannot watch the jobs directory; reloading it every 30s"),
    )
    .ok()?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|e| {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the jobs directory; reloading it every 30s");
        })
        .ok()?;
    Some((watcher, rx))
}

/// Whether an event can change what loads: not a read, and not a file landing in a
/// definition's own watched directory (those are the watch trigger's business).
fn matters(event: &notify::Event, snapshot: &CatalogSnapshot) -> bool {
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    let watched: Vec<&Path> = snapshot
        .definitions
        .values()
        .flat_map(|d| d.watch.iter().map(|w| w.dir.as_path()))
        .collect();
    event.paths.is_empty()
        || event
            .paths
            .iter()
            .any(|p| !watched.iter().any(|w| p.starts_with(w) && p != *w))
}

async fn watch_loop(
    jobs_dir: PathBuf,
    env: Arc<LoadEnv>,
    tx: watch::Sender<Arc<CatalogSnapshot>>,
    mut requests: mpsc::Receiver<oneshot::Sender<Arc<CatalogSnapshot>>>,
) {
    let mut watching: Option<((u64, u64), notify::RecommendedWatcher, Events)> = None;
    let mut due: Option<Instant> = None;
    let mut first_change: Option<Instant> = None;
    let mut next_poll = Instant::now();
    loop {
        // Watch the directory when it exists, again when it was made anew.
        let id = identity(&jobs_dir);
        if watching.as_ref().map(|(w, _, _)| *w) != id {
            watching = id.and_then(|id| start_watcher(&jobs_dir).map(|(w, rx)| (id, w, rx)));
            if watching.is_some() {
                // What happened before the watch began is read by this reload.
                due = Some(Instant::now());
            }
        }
        let poll = if watching.is_some() {
            POLL_WHILE_WATCHED
        } else {
            POLL_WHILE_ABSENT
        };
        if next_poll <= Instant::now() {
            next_poll = Instant::now() + poll;
        }
        let wake = due.map_or(next_poll, |d| d.min(next_poll));
        let mut answer = None;
        tokio::select! {
            event = async {
                match watching.as_mut() {
                    Some((_, _, rx)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match event {
                    Some(Ok(event)) if !matters(&event, &tx.borrow()) => continue,
                    Some(_) => {}
                    // The watcher ended: start another on the next turn.
                    None => watching = None,
                }
                let now = Instant::now();
                let start = *first_change.get_or_insert(now);
                due = Some((now + RELOAD_DEBOUNCE).min(start + MAX_RELOAD_DELAY));
                continue;
            }
            request = requests.recv() => match request {
                Some(reply) => answer = Some(reply),
                None => return,
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
        due = None;
        first_change = None;
        next_poll = Instant::now() + poll;
        let fresh = reload(&jobs_dir, &env).await;
        let before = tx.borrow().clone();
        let current = if *before != fresh {
            log_changes(&before, &fresh);
            let fresh = Arc::new(fresh);
            tx.send_replace(fresh.clone());
            fresh
        } else {
            before
        };
        if let Some(reply) = answer {
            let _ = reply.send(current);
        }
    }
}

/// Logs what a reload changed: definitions loaded, changed or gone, and problems not
/// seen before (each problem is logged once, not at every reload).
fn log_changes(before: &CatalogSnapshot, after: &CatalogSnapshot) {
    for (name, d) in &after.definitions {
        match before.definitions.get(name) {
            None => {
                tracing::info!(definition = %name, mode = ?d.mode, kind = %d.kind, "job definition loaded")
            }
            Some(old) if old != d => tracing::info!(definition = %name, "job definition changed"),
            Some(_) => {}
        }
    }
    for name in before.definitions.keys() {
        if !after.definitions.contains_key(name) {
            tracing::info!(definition = %name, "job definition unloaded");
        }
    }
    for p in &after.problems {
        if !before.problems.contains(p) {
            tracing::warn!(definition = %p.name, file = %p.file.display(), key = p.key.as_deref().unwrap_or(""), "job definition not loaded: {}", p.reason);
        }
    }
}
