//! Resource limits and another user for a hosted run, applied by this binary's hidden
//! `__run-limited` subcommand, with real python3 and bash scripts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use errand_core::LogStream;
use errand_runner::definition::ResourceLimits;
use errand_runner::process::{self, RunEnd, RunEvent, RunOutcome, RunSpec, SpawnError};
use tokio::sync::mpsc;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn spec(program: PathBuf, dir: &Path, limits: ResourceLimits) -> RunSpec {
    RunSpec {
        program,
        args: Vec::new(),
        working_dir: dir.to_path_buf(),
        env: vec![("PATH".into(), std::env::var("PATH").unwrap())],
        stdin: Vec::new(),
        limits,
        user: None,
        timeout: Some(Duration::from_secs(60)),
        stopping_wait_time: Duration::from_secs(2),
        limits_helper: Some(PathBuf::from(env!("CARGO_BIN_EXE_errand"))),
        max_line_bytes: 64 * 1024,
    }
}

/// The outcome, stdout lines, stderr lines and control events of a run.
async fn run(spec: RunSpec) -> (RunOutcome, Vec<String>, Vec<String>, Vec<RunEvent>) {
    let (tx, mut rx) = mpsc::channel(64);
    let running = process::start(spec, tx).await.unwrap();
    let (mut out, mut err, mut control) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(event) = rx.recv().await {
        match event {
            RunEvent::Log(l) if l.stream == LogStream::Stdout => out.push(l.line),
            RunEvent::Log(l) => err.push(l.line),
            other => control.push(other),
        }
    }
    (running.wait().await, out, err, control)
}

#[tokio::test]
async fn a_memory_hog_is_stopped_by_its_limit_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let hog = script(
        dir.path(),
        "hog.py",
        "#!/usr/bin/env python3\nprint('allocating', flush=True)\n\
         block = bytearray(768 * 1024 * 1024)\nprint('allocated')\n",
    );
    let limits = ResourceLimits {
        memory_bytes: Some(256 * 1024 * 1024),
        ..ResourceLimits::default()
    };
    let (outcome, out, err, _) = run(spec(hog.clone(), dir.path(), limits)).await;
    assert_ne!(outcome.end, RunEnd::Exited(0), "{err:?}");
    assert!(
        matches!(outcome.end, RunEnd::Exited(_) | RunEnd::Signalled(_)),
        "{outcome:?}"
    );
    assert!(
        outcome.report.exit_code.is_some_and(|c| c != 0) || outcome.report.signal.is_some(),
        "{outcome:?}"
    );
    assert_eq!(out, vec!["allocating"]);
    assert!(err.iter().any(|l| l.contains("MemoryError")), "{err:?}");
    assert!(outcome.report.max_rss_bytes < 256 * 1024 * 1024);

    // The same script without the limit gets its memory.
    let (outcome, out, _, _) = run(spec(hog, dir.path(), ResourceLimits::default())).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(out, vec!["allocating", "allocated"]);
}

#[tokio::test]
async fn an_open_files_limit_applies() {
    let dir = tempfile::tempdir().unwrap();
    let opener = script(
        dir.path(),
        "open.py",
        "#!/usr/bin/env python3\nimport resource\n\
         print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\nfiles = []\ntry:\n\
         \x20   while len(files) < 1000: files.append(open('/dev/null'))\n\
         except OSError as e:\n\x20   print('refused', e.errno)\n",
    );
    let limits = ResourceLimits {
        open_files: Some(16),
        ..ResourceLimits::default()
    };
    let (outcome, out, err, _) = run(spec(opener, dir.path(), limits)).await;
    assert_eq!(outcome.end, RunEnd::Exited(0), "{err:?}");
    assert_eq!(out, vec!["16", "refused 24"]);
}

#[tokio::test]
async fn a_cpu_limit_ends_a_busy_run_by_signal() {
    let dir = tempfile::tempdir().unwrap();
    let busy = script(
        dir.path(),
        "busy.sh",
        "#!/bin/bash\nwhile true; do :; done\n",
    );
    let limits = ResourceLimits {
        cpu_seconds: Some(1),
        ..ResourceLimits::default()
    };
    let (outcome, _, _, _) = run(spec(busy, dir.path(), limits)).await;
    // SIGXCPU at the soft limit.
    assert_eq!(outcome.end, RunEnd::Signalled(24), "{outcome:?}");
    assert_eq!(outcome.report.signal, Some(24));
    // CPU accounting is coarser than the limit check: about a second, not exactly.
    assert!(outcome.report.cpu_ms >= 500, "{outcome:?}");
}

#[tokio::test]
async fn a_run_as_another_user_keeps_its_control_channel() {
    if !nix_is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let who = script(
        dir.path(),
        "who.sh",
        "#!/bin/bash\nid -un\necho '{\"progress\": 10}' > \"$ERRAND_CONTROL\"\n",
    );
    let mut spec = spec(who, dir.path(), ResourceLimits::default());
    spec.user = Some("nobody".into());
    let (outcome, out, err, control) = run(spec).await;
    assert_eq!(outcome.end, RunEnd::Exited(0), "{err:?}");
    assert_eq!(out, vec!["nobody"]);
    assert!(
        matches!(&control[..], [RunEvent::Progress(p)] if p.percent == Some(10.0)),
        "{control:?}"
    );
}

#[tokio::test]
async fn the_helper_says_why_it_could_not_start_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ResourceLimits {
        open_files: Some(64),
        ..ResourceLimits::default()
    };
    // A bare name is looked up on PATH by the helper.
    let (outcome, _, err, _) = run(spec(
        PathBuf::from("no-such-program-errand"),
        dir.path(),
        limits,
    ))
    .await;
    assert_eq!(outcome.end, RunEnd::Exited(127));
    assert_eq!(
        err,
        vec!["errand: no-such-program-errand: no such program (or its #! interpreter is missing)"]
    );

    // A path is checked before anything starts.
    let missing = dir.path().join("missing.sh");
    let (tx, _rx) = mpsc::channel(4);
    let e = process::start(spec(missing.clone(), dir.path(), limits), tx)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SpawnError::ProgramNotFound { path } if *path == missing),
        "{e}"
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

#[test]
fn switching_users_without_root_is_refused_clearly() {
    let runuser = Path::new("/usr/sbin/runuser");
    if !nix_is_root() || !runuser.exists() {
        eprintln!("skipped: needs root and runuser to start the helper as another user");
        return;
    }
    let out = std::process::Command::new(runuser)
        .args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_errand")])
        .args(["__run-limited", "--user", "root", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "errand: running as user `root` needs errand to run as root (it runs as uid 65534)"
    );
}
