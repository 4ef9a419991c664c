//! Definitions loaded from real folders: every key, every problem, the entry rules and
//! WebJobs folders. Interpreters are found on a `PATH` of stand-in programs made per test,
//! so each answer is known and a missing one can be arranged.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use errand_core::schedule_spec::{CatchUpPolicy, OverlapPolicy};

use super::*;
use crate::catalog::{load_with, CatalogSnapshot};

/// A jobs directory and a `bin` folder of stand-in interpreters beside it.
struct Jobs {
    _root: tempfile::TempDir,
    dir: PathBuf,
    bin: PathBuf,
}

impl Jobs {
    fn new() -> Self {
        Self::with_interpreters(&["bash", "python3", "node", "php", "java", "tool"])
    }

    fn with_interpreters(names: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("jobs");
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        for name in names {
            executable(&bin.join(name), "#!/bin/sh\nexit 0\n");
        }
        Self {
            _root: root,
            dir,
            bin,
        }
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn executable(&self, rel: &str) -> PathBuf {
        let path = self.write(rel, "#!/bin/sh\nexit 0\n");
        executable(&path, "#!/bin/sh\nexit 0\n");
        path
    }

    fn load(&self) -> CatalogSnapshot {
        load_with(&self.dir, &LoadEnv::with_path(self.bin.as_os_str()))
    }

    fn only(&self, name: &str) -> Definition {
        let snapshot = self.load();
        assert!(
            snapshot.problems.is_empty(),
            "unexpected problems: {:#?}",
            snapshot.problems
        );
        snapshot.get(name).map(|d| (**d).clone()).unwrap()
    }

    fn problems(&self, name: &str) -> Vec<DefinitionProblem> {
        let snapshot = self.load();
        assert!(snapshot.get(name).is_none(), "{name} loaded");
        snapshot.problems_of(name).cloned().collect()
    }
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn every_key_of_job_toml_is_read() {
    let jobs = Jobs::new();
    jobs.write("reports/main.py", "print('hi')\n");
    std::fs::create_dir_all(jobs.dir.join("reports/work")).unwrap();
    let toml = jobs.write(
        "reports/job.toml",
        r#"
mode = "triggered"
kind = "reports.nightly"
queue = "batch"
command = ["tool", "main.py"]
args = ["--verbose"]
working_dir = "work"
env = { REGION = "eu", LEVEL = "3" }
pass_env = ["AWS_PROFILE"]
singleton = true
concurrency = 4
timeout = "10m"
max_attempts = 3
stopping_wait_time = "20s"
user = "root"

[schedule]
cron = "30 2 * * *"
timezone = "Europe/Paris"
overlap = "buffer_one"
catch_up = "all"
catch_up_window = "6h"
jitter = "1m"

[backoff]
base = "5s"
max = "10m"

[limits]
cpu_seconds = 60
memory = "512MiB"
open_files = 256
processes = 64

[[triggers.watch]]
dir = "inbox"
glob = "**/*.csv"
debounce = "2s"

[[triggers.hook]]
name = "github-push"
secret_env = "GITHUB_SECRET"
"#,
    );
    let d = jobs.only("reports");
    let dir = jobs.dir.join("reports");
    assert_eq!(d.name, "reports");
    assert_eq!(d.dir, dir);
    assert_eq!(d.source, DefinitionSource::JobToml { path: toml.clone() });
    assert_eq!(d.file(), toml);
    assert_eq!(d.mode, Mode::Triggered);
    assert_eq!(d.kind.as_str(), "reports.nightly");
    assert_eq!(d.queue.as_str(), "batch");
    assert_eq!(d.entry.program, jobs.bin.join("tool"));
    assert_eq!(d.entry.args, vec!["main.py", "--verbose"]);
    assert_eq!(d.working_dir, dir.join("work"));
    assert_eq!(d.env.get("REGION").map(String::as_str), Some("eu"));
    assert_eq!(d.env.get("LEVEL").map(String::as_str), Some("3"));
    assert_eq!(d.pass_env, vec!["AWS_PROFILE"]);
    assert!(d.singleton);
    assert_eq!(d.concurrency, 4);
    assert_eq!(d.timeout, Some(Duration::from_secs(600)));
    assert_eq!(d.max_attempts, 3);
    assert_eq!(d.stopping_wait_time, Duration::from_secs(20));
    assert_eq!(d.user.as_deref(), Some("root"));
    assert_eq!(
        d.backoff,
        Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(600)
        }
    );
    let s = d.schedule.clone().unwrap();
    assert_eq!(s.cron.as_deref(), Some("30 2 * * *"));
    assert_eq!(s.every, None);
    assert_eq!(s.timezone, "Europe/Paris");
    assert_eq!(s.overlap, OverlapPolicy::BufferOne);
    assert_eq!(s.catch_up, CatchUpPolicy::All);
    assert_eq!(s.catch_up_window, Duration::from_secs(6 * 3600));
    assert_eq!(s.jitter, Duration::from_secs(60));
    assert_eq!(
        d.limits,
        ResourceLimits {
            cpu_seconds: Some(60),
            memory_bytes: Some(512 * 1024 * 1024),
            open_files: Some(256),
            processes: Some(64),
        }
    );
    assert_eq!(
        d.watch,
        vec![WatchTrigger {
            dir: dir.join("inbox"),
            glob: "**/*.csv".into(),
            debounce: Duration::from_secs(2),
        }]
    );
    assert!(dir.join("inbox").is_dir(), "the watched directory is made");
    assert_eq!(
        d.hooks,
        vec![HookTrigger {
            name: "github-push".into(),
            secret_env: Some("GITHUB_SECRET".into()),
        }]
    );

    let spec = d.schedule_spec().unwrap();
    assert_eq!(spec.name.as_str(), "definition:reports");
    assert_eq!(spec.cron.as_deref(), Some("30 2 * * *"));
    assert_eq!(spec.timezone, "Europe/Paris");
    assert_eq!(spec.job.kind.as_str(), "reports.nightly");
    assert_eq!(spec.job.queue.as_str(), "batch");
    assert_eq!(spec.job.max_attempts, 3);
    assert_eq!(spec.job.timeout_ms, Some(600_000));
    assert_eq!(spec.overlap, OverlapPolicy::BufferOne);
    assert_eq!(spec.catch_up, CatchUpPolicy::All);
    assert_eq!(spec.catch_up_window_ms, 6 * 3_600_000);
    assert_eq!(spec.jitter_ms, 60_000);
    spec.validate(jiff::Timestamp::now()).unwrap();
}

#[test]
fn a_minimal_folder_gets_every_default() {
    let jobs = Jobs::new();
    jobs.write("cleanup/job.toml", "");
    let script = jobs.write("cleanup/run.sh", "echo hi\n");
    let d = jobs.only("cleanup");
    assert_eq!(d.mode, Mode::Triggered);
    assert_eq!(d.kind.as_str(), "cleanup");
    assert_eq!(d.queue.as_str(), "default");
    assert_eq!(d.entry.program, jobs.bin.join("bash"));
    assert_eq!(d.entry.args, vec![script.to_string_lossy().into_owned()]);
    assert_eq!(d.working_dir, jobs.dir.join("cleanup"));
    assert!(d.env.is_empty() && d.pass_env.is_empty());
    assert_eq!(d.schedule, None);
    assert_eq!(d.schedule_spec(), None);
    assert!(!d.singleton);
    assert_eq!(d.concurrency, 1);
    assert_eq!(d.timeout, None);
    assert_eq!(d.max_attempts, 25);
    assert_eq!(
        d.backoff,
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600)
        }
    );
    assert_eq!(d.stopping_wait_time, Duration::from_secs(5));
    assert_eq!(
        d.restart,
        RestartPolicy {
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60)
            },
            max_restarts: 10,
            window: Duration::from_secs(600),
        }
    );
    assert!(d.limits.is_empty());
    assert_eq!(d.user, None);
    assert!(d.watch.is_empty() && d.hooks.is_empty());
}

#[test]
fn schedules_read_like_the_schedules_api() {
    let jobs = Jobs::new();
    jobs.write("short/job.toml", "schedule = \"*/5 * * * *\"\n");
    jobs.write("short/run.sh", "");
    jobs.write(
        "every/job.toml",
        "[schedule]\nevery = \"30s\"\novercatch = 1\n",
    );
    jobs.write("every/run.sh", "");
    jobs.write("interval/job.toml", "schedule = { every = \"90s\" }\n");
    jobs.write("interval/run.sh", "");
    jobs.write(
        "continuous-worker/job.toml",
        "mode = \"continuous\"\n[restart]\nbase = \"2s\"\nmax = \"30s\"\nmax_restarts = 3\nwindow = \"1m\"\n",
    );
    jobs.write("continuous-worker/run.sh", "");
    let snapshot = jobs.load();

    let short = snapshot.get("short").unwrap().schedule.clone().unwrap();
    assert_eq!(short.cron.as_deref(), Some("*/5 * * * *"));
    assert_eq!(short.timezone, "UTC");
    assert_eq!(short.overlap, OverlapPolicy::Skip);
    assert_eq!(short.catch_up, CatchUpPolicy::Once);
    assert_eq!(short.catch_up_window, Duration::from_secs(24 * 3600));

    let interval = snapshot.get("interval").unwrap().schedule_spec().unwrap();
    assert_eq!(interval.every_ms, Some(90_000));
    assert_eq!(interval.cron, None);

    let every: Vec<_> = snapshot.problems_of("every").collect();
    assert_eq!(every.len(), 1, "{every:#?}");
    assert_eq!(every[0].key.as_deref(), Some("schedule.overcatch"));

    let worker = snapshot.get("continuous-worker").unwrap();
    assert_eq!(worker.mode, Mode::Continuous);
    assert_eq!(
        worker.restart,
        RestartPolicy {
            backoff: Backoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(30)
            },
            max_restarts: 3,
            window: Duration::from_secs(60),
        }
    );
}

/// Each bad value is reported against job.toml and the key it is in.
#[test]
fn every_problem_names_the_file_and_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("concurency = 2", "concurency", "unknown field"),
        (
            "[limits]\nmemroy = \"1GiB\"",
            "limits.memroy",
            "unknown field",
        ),
        ("concurrency = \"two\"", "concurrency", "line 1"),
        ("mode = \"sometimes\"", "mode", "unknown variant"),
        ("kind = \"send mail\"", "kind", "whitespace"),
        ("queue = \"a/b\"", "queue", "queue name"),
        ("concurrency = 0", "concurrency", "between 1 and"),
        ("max_attempts = 0", "max_attempts", "between 1 and"),
        ("timeout = \"soon\"", "timeout", "not a duration"),
        ("timeout = \"30\"", "timeout", "has no unit"),
        (
            "stopping_wait_time = \"10\"",
            "stopping_wait_time",
            "has no unit",
        ),
        ("timeout = \"0s\"", "timeout", "longer than zero"),
        (
            "stopping_wait_time = \"2h\"",
            "stopping_wait_time",
            "at most 1h",
        ),
        (
            "[backoff]\nbase = \"1m\"\nmax = \"10s\"",
            "backoff.max",
            "shorter",
        ),
        ("schedule = \"*/5 * * *\"", "schedule", "cron"),
        ("schedule = \"0 0 30 2 *\"", "schedule", "never fires"),
        (
            "[schedule]\ncron = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"",
            "schedule.timezone",
            "IANA",
        ),
        (
            "[schedule]\nevery = \"500ms\"",
            "schedule.every",
            "at least 1s",
        ),
        (
            "[schedule]\nevery = \"1m\"\ncron = \"* * * * *\"",
            "schedule.cron",
            "exactly one",
        ),
        (
            "[schedule]\nevery = \"1m\"\noverlap = \"queue\"",
            "schedule.overlap",
            "unknown variant",
        ),
        (
            "[schedule]\nevery = \"1m\"\ncatch_up_window = \"30d\"",
            "schedule.catch_up_window",
            "at most",
        ),
        (
            "[schedule]\nevery = \"1m\"\njitter = \"2m\"",
            "schedule.jitter",
            "interval",
        ),
        ("[limits]\nmemory = \"lots\"", "limits.memory", "not a size"),
        ("[limits]\nmemory = 1000", "limits.memory", "at least 1MiB"),
        ("[limits]\nopen_files = 3", "limits.open_files", "between"),
        (
            "[limits]\ncpu_seconds = 0",
            "limits.cpu_seconds",
            "at least 1",
        ),
        ("[limits]\nprocesses = 0", "limits.processes", "at least 1"),
        ("user = \"no-such-user-errand\"", "user", "no user"),
        (
            "working_dir = \"missing\"",
            "working_dir",
            "not a directory",
        ),
        ("env = { \"1X\" = \"a\" }", "env.1X", "not a variable name"),
        (
            "env = { ERRAND_JOB_ID = \"a\" }",
            "env.ERRAND_JOB_ID",
            "set by errand",
        ),
        (
            "pass_env = [\"OK\", \"NOT-OK\"]",
            "pass_env[1]",
            "not a variable name",
        ),
        ("args = [\"a\\u0000b\"]", "args[0]", "NUL"),
        ("command = []", "command", "is empty"),
        (
            "command = [\"no-such-program-errand\"]",
            "command",
            "not found on PATH",
        ),
        ("command = [\"./missing.sh\"]", "command", "does not exist"),
        (
            "[[triggers.watch]]\ndir = \"in\"\nglob = \"[\"",
            "triggers.watch[0].glob",
            "not a glob",
        ),
        (
            "[[triggers.watch]]\ndir = \"in\"\ndebounce = \"later\"",
            "triggers.watch[0].debounce",
            "not a duration",
        ),
        (
            "[[triggers.watch]]\nglob = \"*\"",
            "triggers.watch[0].dir",
            "missing field `dir`",
        ),
        (
            "[[triggers.hook]]\nname = \"a b\"",
            "triggers.hook[0].name",
            "hook name",
        ),
        (
            "[[triggers.hook]]\nname = \"a\"\n[[triggers.hook]]\nname = \"a\"",
            "triggers.hook[1].name",
            "twice",
        ),
        (
            "[[triggers.hook]]\nname = \"a\"\nsecret_env = \"MY-SECRET\"",
            "triggers.hook[0].secret_env",
            "not a variable name",
        ),
        ("[restart]\nmax_restarts = 3", "restart", "only continuous"),
        (
            "mode = \"continuous\"\nschedule = \"* * * * *\"",
            "schedule",
            "triggered jobs only",
        ),
        (
            "mode = \"continuous\"\nconcurrency = 2",
            "concurrency",
            "triggered jobs only",
        ),
        (
            "mode = \"continuous\"\n[restart]\nwindow = \"0s\"",
            "restart.window",
            "longer than zero",
        ),
    ];
    for (toml, key, reason) in cases {
        let jobs = Jobs::new();
        let file = jobs.write("bad/job.toml", toml);
        jobs.write("bad/run.sh", "");
        let problems = jobs.problems("bad");
        let found = problems
            .iter()
            .find(|p| p.key.as_deref() == Some(*key))
            .unwrap_or_else(|| panic!("{toml:?}: no problem at `{key}`: {problems:#?}"));
        assert_eq!(found.file, file, "{toml:?}");
        assert_eq!(found.name, "bad");
        assert!(
            found.reason.contains(reason),
            "{toml:?}: `{}` does not say {reason:?}",
            found.reason
        );
        let shown = found.to_string();
        assert!(shown.contains("job.toml") && shown.contains(key), "{shown}");
    }
}

#[test]
fn several_problems_in_one_file_are_all_reported() {
    let jobs = Jobs::new();
    jobs.write(
        "bad/job.toml",
        "concurrency = 0\ntimeout = \"soon\"\nqueue = \"a b\"\n",
    );
    jobs.write("bad/run.sh", "");
    let keys: Vec<_> = jobs
        .problems("bad")
        .into_iter()
        .filter_map(|p| p.key)
        .collect();
    assert_eq!(keys, vec!["queue", "timeout", "concurrency"]);
}

#[test]
fn entry_files_are_found_in_order_with_their_interpreter() {
    let jobs = Jobs::new();
    let dir = jobs.dir.join("job");
    jobs.write("job/job.toml", "args = [\"x\"]\n");
    let order = [
        ("run.jar", "java", vec!["-jar"]),
        ("run.php", "php", vec![]),
        ("run.js", "node", vec![]),
        ("run.py", "python3", vec![]),
        ("run.sh", "bash", vec![]),
    ];
    // Add from the last to the first: each new file takes over.
    for (file, interpreter, before) in order {
        jobs.write(&format!("job/{file}"), "");
        let d = jobs.only("job");
        assert_eq!(d.entry.program, jobs.bin.join(interpreter), "{file}");
        let mut args: Vec<String> = before.iter().map(|s| s.to_string()).collect();
        args.push(dir.join(file).to_string_lossy().into_owned());
        args.push("x".into());
        assert_eq!(d.entry.args, args, "{file}");
    }
    // `run` comes first, and must be executable.
    jobs.write("job/run", "#!/bin/sh\n");
    let problems = jobs.problems("job");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].file, dir.join("run"));
    assert!(problems[0].reason.contains("not executable"));
    jobs.executable("job/run");
    let d = jobs.only("job");
    assert_eq!(d.entry.program, dir.join("run"));
    assert_eq!(d.entry.args, vec!["x"]);
    // `command` wins over every file; a path with a slash is read from the folder.
    jobs.executable("job/bin/start");
    jobs.write("job/job.toml", "command = [\"bin/start\", \"--now\"]\n");
    let d = jobs.only("job");
    assert_eq!(d.entry.program, dir.join("bin/start"));
    assert_eq!(d.entry.args, vec!["--now"]);
}

#[test]
fn a_folder_without_an_entry_point_says_what_to_add() {
    let jobs = Jobs::new();
    jobs.write("empty/job.toml", "");
    jobs.write("empty/main.py", "");
    let problems = jobs.problems("empty");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].file, jobs.dir.join("empty"));
    assert!(
        problems[0].reason.contains("run.sh"),
        "{}",
        problems[0].reason
    );
    assert!(problems[0].reason.contains("command"));
}

#[test]
fn a_missing_interpreter_is_a_load_problem_naming_it_and_path() {
    let jobs = Jobs::with_interpreters(&["bash"]);
    let script = jobs.write("py/run.py", "print(1)\n");
    jobs.write("py/job.toml", "");
    jobs.write("sh/run.sh", "");
    jobs.write("sh/job.toml", "");
    let snapshot = jobs.load();
    assert!(snapshot.get("sh").is_some(), "the other folder still loads");
    let problems: Vec<_> = snapshot.problems_of("py").collect();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].file, script);
    let reason = &problems[0].reason;
    assert!(reason.contains("`python3`"), "{reason}");
    assert!(
        reason.contains("not found on PATH") && reason.contains(&*jobs.bin.to_string_lossy()),
        "{reason}"
    );
}

#[test]
fn webjobs_folders_load_with_settings_job() {
    let jobs = Jobs::new();
    jobs.write("triggered/report/run.sh", "echo report\n");
    let settings = jobs.write(
        "triggered/report/settings.job",
        "\u{feff}{\n  \"is_singleton\": true,\n  \"stopping_wait_time\": 60,\n  \"schedule\": \"0 */5 * * * *\",\n  \"is_in_place\": true\n}\n",
    );
    jobs.write("continuous/listener/listen.py", "");
    jobs.write("continuous/listener/helper.txt", "");
    jobs.write("triggered/plain/run.sh", "");
    let snapshot = jobs.load();
    assert!(snapshot.problems.is_empty(), "{:#?}", snapshot.problems);

    let report = snapshot.get("report").unwrap();
    assert_eq!(report.mode, Mode::Triggered);
    assert_eq!(
        report.source,
        DefinitionSource::WebJobs {
            settings: Some(settings.clone())
        }
    );
    assert!(report.singleton);
    assert_eq!(report.stopping_wait_time, Duration::from_secs(60));
    assert_eq!(report.entry.program, jobs.bin.join("bash"));
    let spec = report.schedule_spec().unwrap();
    assert_eq!(spec.name.as_str(), "definition:report");
    assert_eq!(spec.cron.as_deref(), Some("0 */5 * * * *"));
    assert_eq!(spec.timezone, "UTC");
    // Six fields, seconds first: every five minutes on the minute.
    let trigger = spec.validate(jiff::Timestamp::now()).unwrap();
    let next = trigger
        .next_after("2026-01-01T00:01:30Z".parse().unwrap())
        .unwrap();
    assert_eq!(
        next,
        "2026-01-01T00:05:00Z".parse::<jiff::Timestamp>().unwrap()
    );

    let listener = snapshot.get("listener").unwrap();
    assert_eq!(listener.mode, Mode::Continuous);
    assert_eq!(
        listener.source,
        DefinitionSource::WebJobs { settings: None }
    );
    assert_eq!(listener.entry.program, jobs.bin.join("python3"));
    assert_eq!(
        listener.entry.args,
        vec![jobs
            .dir
            .join("continuous/listener/listen.py")
            .to_string_lossy()
            .into_owned()]
    );
    assert_eq!(listener.stopping_wait_time, Duration::from_secs(5));
    assert!(!listener.singleton);
    assert_eq!(snapshot.get("plain").unwrap().mode, Mode::Triggered);
}

#[test]
fn webjobs_problems_name_settings_job_and_its_keys() {
    let jobs = Jobs::new();
    jobs.write("triggered/typo/run.sh", "");
    let typo = jobs.write("triggered/typo/settings.job", "{\"is_singelton\": true}");
    jobs.write("triggered/cron/run.sh", "");
    let cron = jobs.write(
        "triggered/cron/settings.job",
        "{\"schedule\": \"61 * * * * *\"}",
    );
    jobs.write("continuous/sched/run.sh", "");
    let sched = jobs.write(
        "continuous/sched/settings.job",
        "{\"schedule\": \"0 * * * * *\"}",
    );
    jobs.write("triggered/win/run.cmd", "");
    jobs.write("triggered/both/run.sh", "");
    jobs.write("triggered/both/job.toml", "");
    let both = jobs.write("triggered/both/settings.job", "{}");
    jobs.write("continuous/moded/run.sh", "");
    let moded = jobs.write("continuous/moded/job.toml", "mode = \"triggered\"\n");
    let snapshot = jobs.load();
    assert!(
        snapshot.definitions.is_empty(),
        "{:#?}",
        snapshot.definitions
    );
    let one = |name: &str| {
        let found: Vec<_> = snapshot.problems_of(name).cloned().collect();
        assert_eq!(found.len(), 1, "{name}: {found:#?}");
        found.into_iter().next().unwrap()
    };
    let p = one("typo");
    assert_eq!((p.file, p.key.as_deref()), (typo, Some("is_singelton")));
    let p = one("cron");
    assert_eq!((p.file, p.key.as_deref()), (cron, Some("schedule")));
    let p = one("sched");
    assert_eq!((p.file, p.key.as_deref()), (sched, Some("schedule")));
    let p = one("win");
    assert!(p.reason.contains("Windows"), "{}", p.reason);
    let p = one("both");
    assert_eq!(p.file, both);
    let p = one("moded");
    assert_eq!((p.file, p.key.as_deref()), (moded, Some("mode")));
}

#[test]
fn a_webjobs_folder_may_hold_a_job_toml() {
    let jobs = Jobs::new();
    jobs.write("continuous/feed/run.sh", "");
    jobs.write("continuous/feed/job.toml", "singleton = true\n");
    let d = jobs.only("feed");
    assert_eq!(d.mode, Mode::Continuous);
    assert!(d.singleton);
}

#[test]
fn an_invalid_folder_never_stops_the_others() {
    let jobs = Jobs::new();
    jobs.write("good/job.toml", "queue = \"mail\"\n");
    jobs.write("good/run.sh", "");
    jobs.write("bad/job.toml", "queue = \n");
    jobs.write("bad/run.sh", "");
    jobs.write("notes.txt", "");
    jobs.write(".git/config", "");
    jobs.write("lonely/run.sh", "");
    let snapshot = jobs.load();
    assert_eq!(
        snapshot.definitions.keys().collect::<Vec<_>>(),
        vec!["good"]
    );
    let names: Vec<_> = snapshot.problems.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["bad", "lonely"]);
    assert!(
        snapshot.problems[0].reason.starts_with("line 1"),
        "{}",
        snapshot.problems[0].reason
    );
    assert!(snapshot.problems[1].reason.contains("no job.toml"));
}

#[test]
fn a_kind_or_hook_taken_twice_is_a_problem_of_the_later_definition() {
    let jobs = Jobs::new();
    jobs.write(
        "a/job.toml",
        "kind = \"mail\"\n[[triggers.hook]]\nname = \"push\"\n",
    );
    jobs.write("a/run.sh", "");
    let b = jobs.write("b/job.toml", "kind = \"mail\"\n");
    jobs.write("b/run.sh", "");
    jobs.write("c/job.toml", "[[triggers.hook]]\nname = \"push\"\n");
    jobs.write("c/run.sh", "");
    jobs.write("mail/job.toml", "");
    jobs.write("mail/run.sh", "");
    jobs.write("triggered/a/run.sh", "");
    let snapshot = jobs.load();
    assert_eq!(snapshot.definitions.keys().collect::<Vec<_>>(), vec!["a"]);
    let p: Vec<_> = snapshot.problems_of("b").collect();
    assert_eq!(p[0].file, b);
    assert_eq!(p[0].key.as_deref(), Some("kind"));
    assert!(p[0].reason.contains("`a`"), "{}", p[0].reason);
    let p: Vec<_> = snapshot.problems_of("c").collect();
    assert_eq!(p[0].key.as_deref(), Some("triggers.hook[0].name"));
    assert!(p[0].reason.contains("`a`"), "{}", p[0].reason);
    let p: Vec<_> = snapshot.problems_of("mail").collect();
    assert_eq!(
        p[0].key.as_deref(),
        Some("kind"),
        "the default kind clashes too"
    );
    let p: Vec<_> = snapshot
        .problems_of("a")
        .filter(|p| p.file == jobs.dir.join("triggered/a"))
        .collect();
    assert!(p[0].reason.contains("already taken"), "{:#?}", p);

    assert_eq!(snapshot.by_kind("mail").unwrap().name, "a");
    let (d, hook) = snapshot.by_hook("push").unwrap();
    assert_eq!((d.name.as_str(), hook.name.as_str()), ("a", "push"));
    assert!(snapshot.by_kind("nothing").is_none());
}

#[test]
fn folder_names_must_make_legal_schedule_names() {
    let jobs = Jobs::new();
    jobs.write("has space/job.toml", "");
    jobs.write("has space/run.sh", "");
    jobs.write("a:b/job.toml", "");
    jobs.write("a:b/run.sh", "");
    let long = "n".repeat(super::load::MAX_NAME_LEN);
    jobs.write(&format!("{long}/job.toml"), "schedule = \"@daily\"\n");
    jobs.write(&format!("{long}/run.sh"), "");
    let snapshot = jobs.load();
    assert!(snapshot.problems_of("has space").next().is_some());
    assert!(snapshot.problems_of("a:b").next().is_some());
    let d = snapshot.get(&long).unwrap();
    assert!(d.schedule_spec().is_some());
}
