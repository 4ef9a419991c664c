//! A job definition: one folder of the jobs directory, validated, with every default
//! filled in. Everything that runs, schedules or triggers a definition reads this type;
//! nothing reads `job.toml` or `settings.job` again.

mod build;
mod entry;
mod job_toml;
mod load;
mod webjobs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use errand_core::schedule_spec::{CatchUpPolicy, JobTemplate, OverlapPolicy, ScheduleSpec};
use errand_core::{JobKind, QueueName, ScheduleName};

pub use load::parse_settings_text;
pub(crate) use load::{load_folder, FolderLayout, LoadEnv};

/// What a definition's own schedule is called: this prefix and the definition's name.
/// `:` is legal in schedule names and never appears in a definition's name, so the
/// schedules a definition owns cannot be mistaken for ones made over the API.
pub const SCHEDULE_PREFIX: &str = "definition:";

/// Whether a definition runs when work arrives or all the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Runs once per job: enqueued over HTTP, by its schedule, a watched file, a hook or on
    /// demand.
    Triggered,
    /// Runs all the time and is restarted when it exits.
    Continuous,
}

/// Where a definition was read from, so that problems and listings name the right file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "format")]
pub enum DefinitionSource {
    /// `<jobs-dir>/<name>/job.toml`.
    JobToml {
        /// The file.
        path: PathBuf,
    },
    /// `<jobs-dir>/triggered/<name>/` or `<jobs-dir>/continuous/<name>/`, with the
    /// `settings.job` file when there is one.
    WebJobs {
        /// The `settings.job` file, when the folder has one.
        settings: Option<PathBuf>,
    },
}

/// The process to start: the program and its arguments, already resolved (an interpreter
/// found on `PATH` for `run.sh`, `run.py`, ...; never a shell line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// An absolute path to the program.
    pub program: PathBuf,
    /// Its arguments: the script for an interpreter, then `args` from job.toml.
    pub args: Vec<String>,
}

/// A definition's own schedule (`schedule = "..."` in job.toml, or `schedule` in
/// settings.job). It becomes the schedule `definition:<name>`, owned by the definition:
/// created or updated when the definition loads, removed when the definition goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DefinitionSchedule {
    /// A cron expression (five or six fields), when the schedule is a cron schedule.
    pub cron: Option<String>,
    /// An interval, when the schedule is an interval schedule.
    pub every: Option<Duration>,
    /// The IANA time zone the cron expression is read in.
    pub timezone: String,
    /// Overlapping runs, exactly as the schedules API.
    #[serde(skip)]
    pub overlap: OverlapPolicy,
    /// Missed slots, exactly as the schedules API.
    #[serde(skip)]
    pub catch_up: CatchUpPolicy,
    /// With `catch_up = "all"`, how far back missed slots are run (default a day).
    pub catch_up_window: Duration,
    /// Each job's start is delayed by a random amount up to this (default none).
    pub jitter: Duration,
}

/// Backoff between attempts (triggered) or restarts (continuous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Backoff {
    /// The wait after the first failure.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

/// How a continuous instance that exits is brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RestartPolicy {
    /// The wait before each restart, doubling from `base` to `max`.
    pub backoff: Backoff,
    /// At most this many restarts within `window`; one more marks the instance failed
    /// until it is started again.
    pub max_restarts: u32,
    /// The window `max_restarts` counts in.
    pub window: Duration,
}

/// Operating-system limits on one run (setrlimit, applied before the program starts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResourceLimits {
    /// CPU seconds (`RLIMIT_CPU`).
    pub cpu_seconds: Option<u64>,
    /// Address space in bytes (`RLIMIT_AS`).
    pub memory_bytes: Option<u64>,
    /// Open files (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Processes of the user (`RLIMIT_NPROC`).
    pub processes: Option<u64>,
}

impl ResourceLimits {
    /// Whether any limit is set (a run without limits needs no helper process).
    pub fn is_empty(&self) -> bool {
        *self == ResourceLimits::default()
    }
}

/// `[[triggers.watch]]`: files appearing or changing under a directory enqueue jobs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WatchTrigger {
    /// The directory watched (absolute; relative paths in job.toml are read from the
    /// definition's folder).
    pub dir: PathBuf,
    /// Which file names (relative to `dir`) count, as a glob: `*.csv`, `**/*.json`.
    pub glob: String,
    /// Changes to one file closer together than this enqueue one job.
    pub debounce: Duration,
}

/// `[[triggers.hook]]`: `POST /v1/hooks/{name}` enqueues a job with the body as payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HookTrigger {
    /// The hook's name in the URL; unique across definitions.
    pub name: String,
    /// The environment variable of the server that holds the signing secret; without one
    /// the hook takes unsigned requests.
    pub secret_env: Option<String>,
}

/// A loaded, valid job definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Definition {
    /// The folder's name: unique in the jobs directory, and the name in the API.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// Which files it was read from.
    pub source: DefinitionSource,
    /// Triggered or continuous.
    pub mode: Mode,
    /// Jobs of this kind run this definition (default: the folder name).
    pub kind: JobKind,
    /// The queue its jobs go to and are claimed from (default: `default`).
    pub queue: QueueName,
    /// What to start.
    pub entry: Entry,
    /// The run's working directory (default: the definition's folder).
    pub working_dir: PathBuf,
    /// Variables set for the run.
    pub env: BTreeMap<String, String>,
    /// Variables of the server's environment passed on by name.
    pub pass_env: Vec<String>,
    /// Variables of the server's environment passed on by name as secrets: their values
    /// are replaced by `***` in the run's log lines and never stored or shown.
    pub secret_env: Vec<String>,
    /// Its own schedule, if any.
    pub schedule: Option<DefinitionSchedule>,
    /// At most one run (or continuous instance) in the whole cluster.
    pub singleton: bool,
    /// At most this many runs at once on one node.
    pub concurrency: u32,
    /// Longest one attempt may run.
    pub timeout: Option<Duration>,
    /// Attempts before a job is dead.
    pub max_attempts: u32,
    /// Wait between attempts.
    pub backoff: Backoff,
    /// How long a run asked to stop may take before it is killed.
    pub stopping_wait_time: Duration,
    /// Restarts of a continuous instance.
    pub restart: RestartPolicy,
    /// Operating-system limits on each run.
    pub limits: ResourceLimits,
    /// Run as this user (only when errand runs as root).
    pub user: Option<String>,
    /// Watched directories.
    pub watch: Vec<WatchTrigger>,
    /// Webhooks.
    pub hooks: Vec<HookTrigger>,
    /// Runs every job of its queue whatever the kind: the definition `errand worker
    /// --queue Q -- CMD` makes for its command. Never set from a folder.
    #[serde(skip)]
    pub any_kind: bool,
}

impl Definition {
    /// The name of the schedule this definition owns: `definition:<name>`.
    pub fn schedule_name(&self) -> Option<ScheduleName> {
        ScheduleName::parse(&format!("{SCHEDULE_PREFIX}{}", self.name)).ok()
    }

    /// The schedule this definition owns, ready to create or update in the store, with
    /// its job template (kind, queue, max_attempts, timeout; an empty payload). `None`
    /// when the definition has no schedule. Every value was validated at load with the
    /// schedules API's own rules, so this cannot fail.
    pub fn schedule_spec(&self) -> Option<ScheduleSpec> {
        let schedule = self.schedule.as_ref()?;
        Some(ScheduleSpec {
            name: self.schedule_name()?,
            cron: schedule.cron.clone(),
            every_ms: schedule.every.map(duration_ms),
            timezone: schedule.timezone.clone(),
            job: JobTemplate {
                kind: self.kind.clone(),
                queue: self.queue.clone(),
                payload: serde_json::Value::Object(Default::default()),
                priority: 0,
                max_attempts: self.max_attempts,
                timeout_ms: self.timeout.map(duration_ms),
                tags: Vec::new(),
            },
            overlap: schedule.overlap,
            catch_up: schedule.catch_up,
            catch_up_window_ms: duration_ms(schedule.catch_up_window),
            jitter_ms: duration_ms(schedule.jitter),
            singleton: self.singleton,
        })
    }

    /// The file an operator edits to change this definition (job.toml or settings.job),
    /// or the folder when it has neither.
    pub fn file(&self) -> PathBuf {
        match &self.source {
            DefinitionSource::JobToml { path } => path.clone(),
            DefinitionSource::WebJobs {
                settings: Some(path),
            } => path.clone(),
            DefinitionSource::WebJobs { settings: None } => self.dir.clone(),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A folder that did not load: which file, which key, and why, so an operator can fix it
/// without reading errand's source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{}: {}{}", file.display(), key.as_deref().map(|k| format!("`{k}`: ")).unwrap_or_default(), reason)]
pub struct DefinitionProblem {
    /// The definition's name (its folder's name).
    pub name: String,
    /// The file at fault (job.toml, settings.job, or the folder when no entry point was
    /// found).
    pub file: PathBuf,
    /// The setting at fault, when one is.
    pub key: Option<String>,
    /// What is wrong and what would fix it.
    pub reason: String,
}

#[cfg(test)]
mod tests;
