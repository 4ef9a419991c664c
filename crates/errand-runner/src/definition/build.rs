//! From the settings as written to a [`Definition`]: every default filled in, every value
//! checked, every problem collected (not just the first) with the key it is about.

use std::path::{Path, PathBuf};
use std::time::Duration;

use errand_api::{EnqueueLimits, EnqueueRequest, JobTemplateRequest, ScheduleRequest};
use errand_core::duration::{self, FlexDuration};
use errand_core::limits::DEFAULT_MAX_ATTEMPTS;
use errand_core::{JobKind, QueueName, RetryPolicy};

use super::entry::{self, SearchPath};
use super::job_toml::{ByteSizeText, JobToml, ScheduleToml};
use super::{
    webjobs, Backoff, Definition, DefinitionProblem, DefinitionSchedule, DefinitionSource,
    HookTrigger, Mode, ResourceLimits, RestartPolicy, WatchTrigger, SCHEDULE_PREFIX,
};

/// Default concurrency per node: scripts are rarely written to run beside themselves, and
/// a WebJobs triggered job never does.
pub(crate) const DEFAULT_CONCURRENCY: u32 = 1;
/// Most runs of one definition at once on one node.
pub(crate) const MAX_CONCURRENCY: u32 = 1024;
/// WebJobs' default stop wait.
pub(crate) const DEFAULT_STOPPING_WAIT: Duration = Duration::from_secs(5);
/// Longest stop wait: a server shutdown waits this long for a run.
pub(crate) const MAX_STOPPING_WAIT: Duration = Duration::from_secs(3600);
/// Continuous restarts: one second doubling to a minute (WebJobs waits a minute).
pub(crate) const DEFAULT_RESTART_BASE: Duration = Duration::from_secs(1);
/// See [`DEFAULT_RESTART_BASE`].
pub(crate) const DEFAULT_RESTART_MAX: Duration = Duration::from_secs(60);
/// Ten restarts in ten minutes (about five minutes of crashing with the default backoff)
/// and the instance is marked failed.
pub(crate) const DEFAULT_MAX_RESTARTS: u32 = 10;
/// See [`DEFAULT_MAX_RESTARTS`].
pub(crate) const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(600);
/// The schedules API's default catch-up window.
pub(crate) const DEFAULT_CATCH_UP_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// A watched file's changes closer together than this enqueue one job.
pub(crate) const DEFAULT_WATCH_DEBOUNCE: Duration = Duration::from_secs(1);
/// Smallest memory limit: below this not even a shell starts.
pub(crate) const MIN_MEMORY_BYTES: u64 = 1 << 20;
/// Fewest open files: stdin, stdout, stderr, the control channel and a few more.
pub(crate) const MIN_OPEN_FILES: u64 = 16;
/// Most open files a Linux process may have by default (`fs.nr_open`).
pub(crate) const MAX_OPEN_FILES: u64 = 1 << 20;

/// The folder a definition is built for.
pub(crate) struct Folder<'a> {
    pub name: &'a str,
    pub dir: &'a Path,
    pub source: DefinitionSource,
    /// The file problems name: job.toml, settings.job or the folder.
    pub file: PathBuf,
    /// Settings came from settings.job: problems use its key names.
    pub settings_job: bool,
    /// A WebJobs folder: WebJobs entry rules apply.
    pub webjobs: bool,
    pub search_path: &'a SearchPath,
}

struct Problems<'a> {
    folder: &'a Folder<'a>,
    list: Vec<DefinitionProblem>,
}

impl Problems<'_> {
    fn key(&mut self, key: &str, reason: impl Into<String>) {
        let key = if self.folder.settings_job {
            webjobs::key_name(key)
        } else {
            key.to_string()
        };
        self.list.push(DefinitionProblem {
            name: self.folder.name.to_string(),
            file: self.folder.file.clone(),
            key: Some(key),
            reason: reason.into(),
        });
    }

    fn at(&mut self, file: Option<PathBuf>, key: Option<String>, reason: String) {
        self.list.push(DefinitionProblem {
            name: self.folder.name.to_string(),
            file: file.unwrap_or_else(|| self.folder.file.clone()),
            key,
            reason,
        });
    }

    /// A duration at `key`, or `default` when absent; a problem (and the default) when
    /// it is not one.
    fn duration(&mut self, key: &str, text: Option<&String>, default: Duration) -> Duration {
        match text.map(|t| with_unit(key, t)) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.key(key, e.message);
                default
            }
        }
    }
}

/// A duration that names its unit: on the command line a bare number is milliseconds, but
/// in a file `timeout = "30"` is far likelier to mean seconds, so it is refused, not guessed.
fn with_unit(field: &str, text: &str) -> Result<Duration, errand_core::ValidationError> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(errand_core::ValidationError::new(
            field,
            format!("`{t}` has no unit: write it with one, such as \"{t}s\" or \"{t}ms\""),
        ));
    }
    duration::parse(field, text)
}

/// Builds and checks a definition from its settings.
pub(crate) fn build(
    raw: JobToml,
    folder: &Folder<'_>,
) -> Result<Definition, Vec<DefinitionProblem>> {
    let mut p = Problems {
        folder,
        list: Vec::new(),
    };
    let mode = raw.mode.unwrap_or(Mode::Triggered);
    if mode == Mode::Continuous {
        only_triggered(&raw, &mut p);
    } else if raw.restart.is_some() {
        p.key(
            "restart",
            "only continuous jobs are restarted: set `mode = \"continuous\"` or remove [restart]",
        );
    }

    let kind_text = raw.kind.clone().unwrap_or_else(|| folder.name.to_string());
    let kind = JobKind::parse(&kind_text)
        .map_err(|e| p.key("kind", e.message))
        .ok();
    let queue = match &raw.queue {
        None => Some(QueueName::default_queue()),
        Some(q) => QueueName::parse(q)
            .map_err(|e| p.key("queue", e.message))
            .ok(),
    };
    let timeout = raw
        .timeout
        .as_ref()
        .map(|t| {
            with_unit("timeout", t)
                .map_err(|e| p.key("timeout", e.message))
                .ok()
        })
        .unwrap_or(None);
    let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if let (Some(kind), Some(queue)) = (&kind, &queue) {
        // The enqueue API's own rules for what every job of this definition carries.
        let template = EnqueueRequest {
            queue: Some(queue.to_string()),
            max_attempts: Some(max_attempts),
            timeout: timeout.map(FlexDuration),
            ..EnqueueRequest::new(kind.as_str())
        };
        if let Err(e) = template.into_new_job(&unbounded()) {
            p.key(&e.field, e.message);
        }
    }

    let retry = RetryPolicy::default();
    let backoff = raw.backoff.as_ref().map(|b| {
        let base = p.duration("backoff.base", b.base.as_ref(), retry.base);
        let max = p.duration("backoff.max", b.max.as_ref(), retry.max.max(base));
        Backoff { base, max }
    });
    let backoff = backoff.unwrap_or(Backoff {
        base: retry.base,
        max: retry.max,
    });
    if backoff.base > backoff.max {
        p.key("backoff.max", "is shorter than backoff.base");
    }

    let stopping_wait_time = p.duration(
        "stopping_wait_time",
        raw.stopping_wait_time.as_ref(),
        DEFAULT_STOPPING_WAIT,
    );
    if stopping_wait_time > MAX_STOPPING_WAIT {
        p.key(
            "stopping_wait_time",
            "at most 1h: a server shutdown waits this long for a run",
        );
    }

    let restart = restart_policy(&raw, &mut p);
    let concurrency = raw.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        p.key(
            "concurrency",
            format!("must be between 1 and {MAX_CONCURRENCY} (runs at once on one node)"),
        );
    }
    let limits = limits(&raw, &mut p);
    check_user(raw.user.as_deref(), &mut p);
    check_env(&raw, &mut p);
    for (i, a) in raw.args.iter().enumerate() {
        if a.contains('\0') {
            p.key(&format!("args[{i}]"), "must not contain NUL characters");
        }
    }

    let working_dir = match &raw.working_dir {
        None => folder.dir.to_path_buf(),
        Some(w) => {
            let path = folder.dir.join(w);
            if !path.is_dir() {
                p.key(
                    "working_dir",
                    format!("`{}` is not a directory", path.display()),
                );
            }
            path
        }
    };

    let entry = match &raw.command {
        Some(command) => entry::from_command(folder.dir, command, &raw.args, folder.search_path),
        None => entry::detect(folder.dir, folder.webjobs, &raw.args, folder.search_path),
    }
    .map_err(|e| {
        let file = e
            .file
            .or_else(|| e.key.is_none().then(|| folder.dir.to_path_buf()));
        p.at(file, e.key, e.reason);
    })
    .ok();

    let schedule = raw
        .schedule
        .as_ref()
        .and_then(|s| schedule(s, folder.name, &kind_text, max_attempts, timeout, &mut p));
    let (watch, hooks) = triggers(&raw, folder.dir, &mut p);

    match (p.list.is_empty(), kind, queue, entry) {
        (true, Some(kind), Some(queue), Some(entry)) => Ok(Definition {
            name: folder.name.to_string(),
            dir: folder.dir.to_path_buf(),
            source: folder.source.clone(),
            mode,
            kind,
            queue,
            entry,
            working_dir,
            env: raw.env,
            pass_env: raw.pass_env,
            secret_env: raw.secret_env,
            schedule,
            singleton: raw.singleton.unwrap_or(false),
            concurrency,
            timeout,
            max_attempts,
            backoff,
            stopping_wait_time,
            restart,
            limits,
            user: raw.user,
            watch,
            hooks,
            any_kind: false,
        }),
        _ => Err(p.list),
    }
}

/// Limits of the enqueue rules that do not apply to a definition (its payloads come
/// later, each checked when it is enqueued).
fn unbounded() -> EnqueueLimits {
    EnqueueLimits {
        max_payload_bytes: usize::MAX,
    }
}

/// Keys that mean nothing for a continuous job: naming them is a mistake worth saying.
fn only_triggered(raw: &JobToml, p: &mut Problems<'_>) {
    let set = [
        ("schedule", raw.schedule.is_some()),
        ("concurrency", raw.concurrency.is_some()),
        ("timeout", raw.timeout.is_some()),
        ("max_attempts", raw.max_attempts.is_some()),
        ("backoff", raw.backoff.is_some()),
        ("triggers", raw.triggers.is_some()),
    ];
    for (key, _) in set.iter().filter(|(_, present)| *present) {
        p.key(
            key,
            "applies to triggered jobs only; a continuous job runs all the time (one instance per node, or one in the cluster with `singleton`)",
        );
    }
}

fn restart_policy(raw: &JobToml, p: &mut Problems<'_>) -> RestartPolicy {
    let r = raw.restart.as_ref();
    let base = p.duration(
        "restart.base",
        r.and_then(|r| r.base.as_ref()),
        DEFAULT_RESTART_BASE,
    );
    let max = p.duration(
        "restart.max",
        r.and_then(|r| r.max.as_ref()),
        DEFAULT_RESTART_MAX.max(base),
    );
    if base > max {
        p.key("restart.max", "is shorter than restart.base");
    }
    let window = p.duration(
        "restart.window",
        r.and_then(|r| r.window.as_ref()),
        DEFAULT_RESTART_WINDOW,
    );
    if window.is_zero() {
        p.key("restart.window", "must be longer than zero");
    }
    RestartPolicy {
        backoff: Backoff { base, max },
        max_restarts: r
            .and_then(|r| r.max_restarts)
            .unwrap_or(DEFAULT_MAX_RESTARTS),
        window,
    }
}

fn limits(raw: &JobToml, p: &mut Problems<'_>) -> ResourceLimits {
    let Some(l) = &raw.limits else {
        return ResourceLimits::default();
    };
    if l.cpu_seconds == Some(0) {
        p.key("limits.cpu_seconds", "must be at least 1");
    }
    if l.processes == Some(0) {
        p.key("limits.processes", "must be at least 1");
    }
    if let Some(n) = l
        .open_files
        .filter(|n| !(MIN_OPEN_FILES..=MAX_OPEN_FILES).contains(n))
    {
        p.key(
            "limits.open_files",
            format!("{n} is not between {MIN_OPEN_FILES} and {MAX_OPEN_FILES}"),
        );
    }
    let memory_bytes = l.memory.as_ref().and_then(|m| {
        let bytes = match m {
            ByteSizeText::Bytes(b) => *b,
            ByteSizeText::Text(t) => match t.trim().parse::<bytesize::ByteSize>() {
                Ok(size) => size.as_u64(),
                Err(_) => {
                    p.key(
                        "limits.memory",
                        format!("`{t}` is not a size: write e.g. \"512MiB\", \"2GiB\" or a number of bytes"),
                    );
                    return None;
                }
            },
        };
        if bytes < MIN_MEMORY_BYTES {
            p.key("limits.memory", "must be at least 1MiB");
        }
        Some(bytes)
    });
    ResourceLimits {
        cpu_seconds: l.cpu_seconds,
        memory_bytes,
        open_files: l.open_files,
        processes: l.processes,
    }
}

/// A user must exist, and errand must be able to become it.
fn check_user(user: Option<&str>, p: &mut Problems<'_>) {
    let Some(user) = user else { return };
    match nix::unistd::User::from_name(user) {
        Ok(Some(found)) => {
            let me = nix::unistd::geteuid();
            if !me.is_root() && found.uid != me {
                p.key(
                    "user",
                    format!("errand runs as uid {me}, not root, so it cannot run jobs as `{user}`"),
                );
            }
        }
        Ok(None) => p.key("user", format!("no user `{user}` on this machine")),
        Err(e) => p.key("user", format!("looking up `{user}` failed: {e}")),
    }
}

/// Whether `name` is an environment variable name a shell would accept.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_env_name(key: &str, name: &str, p: &mut Problems<'_>) {
    if !is_env_name(name) {
        p.key(
            key,
            format!("`{name}` is not a variable name (letters, digits and _, not starting with a digit)"),
        );
    } else if name.starts_with("ERRAND_") {
        p.key(
            key,
            format!("`{name}`: names starting with ERRAND_ are set by errand for each run"),
        );
    }
}

fn check_env(raw: &JobToml, p: &mut Problems<'_>) {
    for (name, value) in &raw.env {
        check_env_name(&format!("env.{name}"), name, p);
        if value.contains('\0') {
            p.key(&format!("env.{name}"), "must not contain NUL characters");
        }
    }
    for (i, name) in raw.pass_env.iter().enumerate() {
        check_env_name(&format!("pass_env[{i}]"), name, p);
    }
    for (i, name) in raw.secret_env.iter().enumerate() {
        check_env_name(&format!("secret_env[{i}]"), name, p);
    }
}

/// Checks the schedule with the schedules API's own rules, as the schedule
/// `definition:<name>` the definition will own.
fn schedule(
    s: &ScheduleToml,
    name: &str,
    kind: &str,
    max_attempts: u32,
    timeout: Option<Duration>,
    p: &mut Problems<'_>,
) -> Option<DefinitionSchedule> {
    let t = &s.table;
    let key = |field: &str| {
        if s.short && field == "cron" {
            "schedule".to_string()
        } else {
            format!("schedule.{field}")
        }
    };
    let mut flex = |field: &str, text: Option<&String>| -> Result<Option<Duration>, ()> {
        match text.map(|t| with_unit(field, t)) {
            None => Ok(None),
            Some(Ok(d)) => Ok(Some(d)),
            Some(Err(e)) => {
                p.key(&key(field), e.message);
                Err(())
            }
        }
    };
    let every = flex("every", t.every.as_ref());
    let window = flex("catch_up_window", t.catch_up_window.as_ref());
    let jitter = flex("jitter", t.jitter.as_ref());
    let (Ok(every), Ok(window), Ok(jitter)) = (every, window, jitter) else {
        return None;
    };
    let request = ScheduleRequest {
        name: format!("{SCHEDULE_PREFIX}{name}"),
        cron: t.cron.clone(),
        every: every.map(FlexDuration),
        timezone: t.timezone.clone(),
        job: Some(JobTemplateRequest {
            kind: kind.to_string(),
            max_attempts: Some(max_attempts),
            timeout: timeout.map(FlexDuration),
            ..JobTemplateRequest::default()
        }),
        overlap: t.overlap,
        catch_up: t.catch_up,
        catch_up_window: window.map(FlexDuration),
        jitter: jitter.map(FlexDuration),
        singleton: false,
        workflow: None,
    };
    match request.into_spec(&unbounded()) {
        Ok(spec) => Some(DefinitionSchedule {
            cron: spec.cron,
            every: spec.every_ms.map(Duration::from_millis),
            timezone: spec.timezone,
            overlap: spec.overlap,
            catch_up: spec.catch_up,
            catch_up_window: window.unwrap_or(DEFAULT_CATCH_UP_WINDOW),
            jitter: Duration::from_millis(spec.jitter_ms),
        }),
        // The job template and the name were checked (and reported) on their own keys.
        Err(e) if e.field.starts_with("job") || e.field == "name" => None,
        Err(e) => {
            p.key(&key(&e.field), e.message);
            None
        }
    }
}

fn triggers(
    raw: &JobToml,
    dir: &Path,
    p: &mut Problems<'_>,
) -> (Vec<WatchTrigger>, Vec<HookTrigger>) {
    let Some(t) = &raw.triggers else {
        return (Vec::new(), Vec::new());
    };
    let mut watch = Vec::new();
    for (i, w) in t.watch.iter().enumerate() {
        let key = |field: &str| format!("triggers.watch[{i}].{field}");
        let path = dir.join(&w.dir);
        if let Err(e) = std::fs::create_dir_all(&path) {
            p.key(
                &key("dir"),
                format!("`{}` cannot be created: {e}", path.display()),
            );
        } else if !path.is_dir() {
            p.key(
                &key("dir"),
                format!("`{}` is not a directory", path.display()),
            );
        }
        let glob = w.glob.clone().unwrap_or_else(|| "*".to_string());
        if let Err(e) = globset::Glob::new(&glob) {
            p.key(
                &key("glob"),
                format!("`{glob}` is not a glob: {}", e.kind()),
            );
        }
        let debounce = p.duration(
            &key("debounce"),
            w.debounce.as_ref(),
            DEFAULT_WATCH_DEBOUNCE,
        );
        watch.push(WatchTrigger {
            dir: path,
            glob,
            debounce,
        });
    }
    let mut hooks: Vec<HookTrigger> = Vec::new();
    for (i, h) in t.hook.iter().enumerate() {
        let key = |field: &str| format!("triggers.hook[{i}].{field}");
        if let Err(e) = QueueName::parse(&h.name) {
            p.key(&key("name"), e.message.replace("queue", "hook"));
        }
        if hooks.iter().any(|other| other.name == h.name) {
            p.key(&key("name"), format!("hook `{}` is named twice", h.name));
        }
        if let Some(var) = &h.secret_env {
            if !is_env_name(var) {
                p.key(
                    &key("secret_env"),
                    format!("`{var}` is not a variable name"),
                );
            }
        }
        hooks.push(HookTrigger {
            name: h.name.clone(),
            secret_env: h.secret_env.clone(),
        });
    }
    (watch, hooks)
}
