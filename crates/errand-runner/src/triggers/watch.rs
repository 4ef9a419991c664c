//! A watched directory: files that appear or change under it, and match its glob, are
//! handed to a [`WatchSink`] once per settled version, so a definition's job runs once for
//! each file an operator (or another system) drops there.
//!
//! - At start the directory is scanned, so files that arrived while errand was down are
//!   seen too.
//! - Then `notify` reports creations, writes and renames into the directory. Each path is
//!   debounced: a file is looked at only once no event has touched it for the trigger's
//!   `debounce` and its modification time is that old, so a file written in several chunks
//!   is seen once, whole.
//! - A version is the file's relative path, size and modification time
//!   ([`SeenFile::version_key`]). A version already handed over is not handed over again by
//!   a later event or rescan; the sink keeps the durable record (the server inserts the job
//!   and a mark of the version in one transaction), so a restart does not enqueue twice
//!   either.
//! - When the sink fails, the file is offered again after [`WatchTuning::retry`].
//! - Dropping the [`FileWatch`] stops it.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use globset::{GlobBuilder, GlobMatcher};
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::definition::WatchTrigger;

/// One settled version of a watched file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its path under the watched directory, `/`-separated: what the glob matched.
    pub relative: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time.
    pub modified: jiff::Timestamp,
}

impl SeenFile {
    /// A stable name of this version of the file (size, modification time in nanoseconds,
    /// relative path): the key under which the server marks it as enqueued.
    pub fn version_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.size,
            self.modified.as_nanosecond(),
            self.relative
        )
    }
}

/// What a sink may answer when it cannot take a file now; the watcher offers it again.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Whoever turns seen files into jobs (the server: a job and a durable mark of the
/// version, in one transaction).
#[async_trait::async_trait]
pub trait WatchSink: Send + Sync + 'static {
    /// A new version of a matching file has settled. `Ok` means it is taken care of (or
    /// was already); an error makes the watcher offer it again later.
    async fn file_seen(&self, file: SeenFile) -> Result<(), SinkError>;

    /// The file whose version was last handed over under `version_key` is gone: its mark
    /// may be forgotten. Called at most once per such version, on a best-effort basis
    /// (a failure is logged, not retried).
    async fn file_gone(&self, relative: &str, version_key: &str) -> Result<(), SinkError> {
        let _ = (relative, version_key);
        Ok(())
    }
}

/// Timings a watch uses besides the trigger's debounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTuning {
    /// How long after a failed hand-over the file is offered again.
    pub retry: Duration,
    /// How often the whole directory is scanned again, in case the operating system
    /// dropped events.
    pub rescan_every: Duration,
}

impl Default for WatchTuning {
    fn default() -> Self {
        Self {
            retry: Duration::from_secs(1),
            rescan_every: Duration::from_secs(60),
        }
    }
}

/// Why a watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The glob does not parse.
    #[error("watch glob `{glob}` is not a valid glob: {source}")]
    Glob {
        /// The glob.
        glob: String,
        /// Why.
        source: globset::Error,
    },
    /// The directory cannot be read.
    #[error("watched directory {}: {source}", dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path is not a directory.
    #[error("watched path {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The operating system's watch could not be set up (e.g. too many inotify watches).
    #[error("cannot watch {}: {source}", dir.display())]
    Notify {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: notify::Error,
    },
    /// `start` was called outside a Tokio runtime.
    #[error("a file watch needs a Tokio runtime")]
    NoRuntime,
}

enum Message {
    Event(notify::Result<Event>),
    Rescan,
}

/// A running watch of one directory; stops when dropped.
pub struct FileWatch {
    _watcher: RecommendedWatcher,
    messages: mpsc::UnboundedSender<Message>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch").finish_non_exhaustive()
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FileWatch {
    /// Starts watching `trigger.dir` with the default [`WatchTuning`]; must be called
    /// within a Tokio runtime.
    ///
    /// # Errors
    /// A bad glob, a directory that is missing or unreadable, or an operating-system watch
    /// that cannot be set up.
    pub fn start(trigger: WatchTrigger, sink: Arc<dyn WatchSink>) -> Result<FileWatch, WatchError> {
        Self::start_with(trigger, sink, WatchTuning::default())
    }

    /// [`FileWatch::start`] with chosen timings.
    ///
    /// # Errors
    /// As [`FileWatch::start`].
    pub fn start_with(
        trigger: WatchTrigger,
        sink: Arc<dyn WatchSink>,
        tuning: WatchTuning,
    ) -> Result<FileWatch, WatchError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
        let matcher = GlobBuilder::new(&trigger.glob)
            .literal_separator(true)
            .build()
            .map_err(|source| WatchError::Glob {
                glob: trigger.glob.clone(),
                source,
            })?
            .compile_matcher();
        let dir = trigger.dir.clone();
        let meta = std::fs::metadata(&dir).map_err(|source| WatchError::Directory {
            dir: dir.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(WatchError::NotADirectory(dir));
        }
        // A glob without a separator matches only top-level names: no need to watch (or
        // scan) below.
        let recursive = trigger.glob.contains('/');
        let (messages, inbox) = mpsc::unbounded_channel();
        let events = messages.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only once the watch is dropped.
            let _ = events.send(Message::Event(event));
        })
        .map_err(|source| WatchError::Notify {
            dir: dir.clone(),
            source,
        })?;
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        watcher
            .watch(&dir, mode)
            .map_err(|source| WatchError::Notify {
                dir: dir.clone(),
                source,
            })?;
        let watching = Watching {
            dir,
            matcher,
            recursive,
            debounce: trigger.debounce,
            tuning,
            sink,
            pending: HashMap::new(),
            reported: HashMap::new(),
        };
        let task = runtime.spawn(watching.run(inbox));
        Ok(FileWatch {
            _watcher: watcher,
            messages,
            task,
        })
    }

    /// Scans the whole directory again now (as at start): anything new or changed that no
    /// event reported is seen; versions already handed over are not handed over again.
    pub fn rescan(&self) {
        // Fails only when the task has ended, which happens only on drop.
        let _ = self.messages.send(Message::Rescan);
    }
}

struct Watching {
    dir: PathBuf,
    matcher: GlobMatcher,
    recursive: bool,
    debounce: Duration,
    tuning: WatchTuning,
    sink: Arc<dyn WatchSink>,
    /// Paths to look at, and when.
    pending: HashMap<PathBuf, Instant>,
    /// Paths handed over, with the version handed over last.
    reported: HashMap<PathBuf, String>,
}

impl Watching {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Message>) {
        self.scan(self.dir.clone()).await;
        let mut rescan = tokio::time::interval_at(
            Instant::now() + self.tuning.rescan_every,
            self.tuning.rescan_every,
        );
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_due = self.pending.values().min().copied();
            tokio::select! {
                message = inbox.recv() => match message {
                    Some(Message::Event(event)) => self.on_event(event).await,
                    Some(Message::Rescan) => self.scan(self.dir.clone()).await,
                    None => return,
                },
                _ = sleep_until(next_due) => self.look_at_due().await,
                _ = rescan.tick() => self.scan(self.dir.clone()).await,
            }
        }
    }

    fn relative(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.dir).ok()?;
        let text = relative.to_str()?;
        (!text.is_empty()).then(|| text.to_string())
    }

    fn matches(&self, path: &Path) -> bool {
        path.strip_prefix(&self.dir)
            .map(|relative| self.matcher.is_match(relative))
            .unwrap_or(false)
    }

    async fn on_event(&mut self, event: notify::Result<Event>) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "file watch error; rescanning");
                self.scan(self.dir.clone()).await;
                return;
            }
        };
        if event.need_rescan() {
            self.scan(self.dir.clone()).await;
            return;
        }
        let touched = match event.kind {
            EventKind::Create(CreateKind::Folder) => {
                for path in event.paths {
                    self.scan(path).await;
                }
                return;
            }
            EventKind::Modify(ModifyKind::Name(_)) => {
                // A directory renamed into the tree brings its files with it.
                for path in &event.paths {
                    if self.recursive && path.is_dir() {
                        self.scan(path.clone()).await;
                    }
                }
                true
            }
            EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Remove(_) => {
                for path in &event.paths {
                    self.pending.remove(path);
                    self.forget(path).await;
                }
                return;
            }
            _ => false,
        };
        if touched {
            let due = Instant::now() + self.debounce;
            for path in event.paths {
                if self.matches(&path) {
                    self.pending.insert(path, due);
                }
            }
        }
    }

    /// Schedules every matching file under `root` to be looked at now.
    async fn scan(&mut self, root: PathBuf) {
        let dir = self.dir.clone();
        let matcher = self.matcher.clone();
        let recursive = self.recursive;
        let found = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            walk(&dir, &root, &matcher, recursive, &mut found);
            found
        })
        .await
        .unwrap_or_default();
        let now = Instant::now();
        for path in found {
            self.pending.entry(path).or_insert(now);
        }
    }

    async fn look_at_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(path, _)| path.clone())
            .collect();
        for path in due {
            self.pending.remove(&path);
            self.look_at(path).await;
        }
    }

    async fn look_at(&mut self, path: PathBuf) {
        let meta = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget(&path).await;
                return;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read a watched file; trying again later");
                self.pending
                    .insert(path, Instant::now() + self.tuning.retry);
                return;
            }
        };
        if !meta.is_file() {
            return;
        }
        let Some(relative) = self.relative(&path) else {
            tracing::warn!(path = %path.display(), "a watched file's name is not UTF-8; ignored");
            return;
        };
        let Ok(modified) = meta.modified() else {
            tracing::warn!(path = %path.display(), "no modification time for a watched file; ignored");
            return;
        };
        // Written to less than a debounce ago (an event not read yet, or a file found by a
        // scan while it is being written): wait until it has been still that long.
        if let Ok(age) = SystemTime::now().duration_since(modified) {
            if age < self.debounce {
                self.pending
                    .insert(path, Instant::now() + (self.debounce - age));
                return;
            }
        }
        let Ok(modified) = jiff::Timestamp::try_from(modified) else {
            tracing::warn!(path = %path.display(), "a watched file's modification time is out of range; ignored");
            return;
        };
        let seen = SeenFile {
            path: path.clone(),
            relative,
            size: meta.len(),
            modified,
        };
        let key = seen.version_key();
        if self.reported.get(&path) == Some(&key) {
            return;
        }
        match self.sink.file_seen(seen).await {
            Ok(()) => {
                self.reported.insert(path, key);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "a watched file could not be enqueued; trying again later");
                self.pending
                    .insert(path, Instant::now() + self.tuning.retry);
            }
        }
    }

    async fn forget(&mut self, path: &Path) {
        let Some(key) = self.reported.remove(path) else {
            return;
        };
        let relative = self.relative(path).unwrap_or_default();
        if let Err(e) = self.sink.file_gone(&relative, &key).await {
            tracing::warn!(path = %path.display(), error = %e, "could not forget a watched file's version");
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Collects the regular files (symlinks followed) under `root` that match, relative to
/// `dir`. Symlinked directories are not entered (no cycles).
fn walk(dir: &Path, root: &Path, matcher: &GlobMatcher, recursive: bool, found: &mut Vec<PathBuf>) {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %root.display(), error = %e, "cannot scan a watched directory");
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if recursive {
                walk(dir, &path, matcher, recursive, found);
            }
        } else if path
            .strip_prefix(dir)
            .map(|relative| matcher.is_match(relative))
            .unwrap_or(false)
        {
            found.push(path);
        }
    }
}

#[cfg(test)]
mod tests;
